"""pyinfra's configuration file, which pyinfra executes before it loads the inventory.

It makes pyinfra validate the inventory and group data against the cluster model before it
connects to any host (see mailfleet.preflight).
"""

from pyinfra import state

from mailfleet.preflight import validate_before_connect

validate_before_connect(state)
