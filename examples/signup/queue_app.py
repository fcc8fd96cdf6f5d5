"""The Conveyor App that ``conveyor serve`` and ``conveyor worker`` load for this example.

It needs no task of its own: the work is done by the receiving web app, which
Conveyor calls back with the built-in ``conveyor.http`` task.
"""

import conveyor

app = conveyor.App()  # CONVEYOR_URL, else ./conveyor.db; every App has conveyor.http
