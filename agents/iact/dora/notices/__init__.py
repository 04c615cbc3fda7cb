"""DORA events alert too: a failed or rolled-back production deployment, or an incident opened, is sent
through the alerter's channels (Slack, e-mail, the JSON-lines log) as a DORA notice.

config.py reads the dashboard's `alerts:` section, message.py words the notice, signals.py decides when
one is due (after the commit, once per transition), outbox.py delivers it off the request thread.
This package's __init__ imports nothing: conf.py reads config.py before Django is set up.
"""
