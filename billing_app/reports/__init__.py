"""The itemized usage report: its download (`views`), the workbook (`writer`), the queue and
worker that build it (`jobs`) and the kept reports (`store`)."""
