"""The Conveyor App that ``conveyor serve`` and ``conveyor worker`` load for this example.

It needs no task of its own: the work is done by the receiving web app, which
Conveyor calls back with the built-in ``conveyor.http`` task.
"""

import conveyor
from conveyor.http_task import register_builtin_tasks

app = conveyor.App()  # CONVEYOR_URL, else ./conveyor.db
register_builtin_tasks(app)  # idempotent: a no-op where the App already registers conveyor.http
