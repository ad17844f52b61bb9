"""The itemized usage report: kept reports (`store`) and the queue that builds them (`jobs`)."""
