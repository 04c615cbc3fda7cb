"""The Django app that holds delivery events and computes DORA's four keys from them."""

from django.apps import AppConfig


class DoraConfig(AppConfig):
    """Registered as iact.dora; its label `dora` names the tables."""

    name = "iact.dora"
    label = "dora"
    verbose_name = "DORA metrics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Connect the DORA notices (iact.dora.notices) and the data version: models are loaded only now."""
        from iact.dora.metrics import version
        from iact.dora.notices import signals

        signals.connect()
        version.connect()
