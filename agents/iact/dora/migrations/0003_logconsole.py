"""The log console's permissions (view_logs, manage_alerts), on a model without a table."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("dora", "0002_token_scope_deliveries_throttle")]

    operations = [
        migrations.CreateModel(
            name="LogConsole",
            fields=[],
            options={
                "managed": False,
                "default_permissions": (),
                "permissions": [
                    ("view_logs", "Can read log rows in the log console"),
                    ("manage_alerts", "Can acknowledge, silence and unsilence alerts"),
                ],
            },
        ),
    ]
