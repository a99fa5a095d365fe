"""Deploy the mail cluster: validate the inventory, then apply each role to the hosts of its group.

    pyinfra -y inventories/local.py deploy.py
"""

from pyinfra import host, inventory

from mailfleet.inventory import cluster_from_inventory
from roles.loadbalancer import loadbalancer
from roles.mailstore import mailstore
from roles.mta import mta

cluster = cluster_from_inventory(inventory)
node = cluster.node(host.name)

if "loadbalancer" in node.roles:
    loadbalancer(cluster, node)

if "mta" in node.roles:
    mta(cluster, node)

if "mailstore" in node.roles:
    mailstore(cluster, node)
