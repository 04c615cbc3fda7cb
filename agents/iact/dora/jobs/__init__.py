"""The dashboard's own cron jobs: a wrapper that records each run, and what /health/ makes of the record.

`run` is the wrapper (`iact-dora-job`, runs as root for the backup: no Django, standard library only);
`status` the record it writes and the page reads; `schedule` and `judge` turn a record into green,
amber or red on the page.
"""
