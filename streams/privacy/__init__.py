"""Personal data in the log: encrypted under per-session data keys, erased by destroying them.

``cipher``: AES-GCM values, data keys wrapped by the master key; ``sealing``: which values of an
event or a state are sealed and opened (the fields ``schemas.personal`` marks); ``keyring``: the
data keys' compacted topic, tailed by every worker, and the people index for erasure by person.
"""
