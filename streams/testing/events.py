"""Old path of ``streams.devkit.events``, for files being edited elsewhere that still import it (remove after).

The module object is the new one (``sys.modules``), so attributes and monkeypatches reach it.
"""

import sys

import streams.devkit.events as _moved

sys.modules[__name__] = _moved
