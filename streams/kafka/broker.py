"""Old path of ``streams.devkit.broker``, for files being edited elsewhere that still import it (remove after).

The module object is the new one (``sys.modules``), so attributes and monkeypatches reach it.
"""

import sys

import streams.devkit.broker as _moved

if __name__ == "__main__":  # python -m streams.kafka.broker (ops/test.sh)
    sys.exit(_moved.main())
sys.modules[__name__] = _moved
