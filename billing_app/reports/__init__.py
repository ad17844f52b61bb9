"""The itemized usage report: its download (`views`), the web side's claim and wait
(`requests`), the queue (`queue`), the worker that builds it (`worker`), its commands
(`commands`), the workbook (`writer`) and the kept reports (`store`)."""
