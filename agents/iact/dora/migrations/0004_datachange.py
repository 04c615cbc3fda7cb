"""The delivery events' change log (iact.dora.metrics.version): the dashboard's row cache is keyed on it."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("dora", "0003_logconsole")]

    operations = [
        migrations.CreateModel(
            name="DataChange",
            fields=[("id", models.BigAutoField(primary_key=True, serialize=False))],
        ),
    ]
