"""The WSGI entry point gunicorn serves (iact.dora.wsgi:application)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iact.dora.settings")
application = get_wsgi_application()
