"""Deploy the mail cluster: validate the inventory, then apply each role to the hosts of its group.

    pyinfra -y inventories/production.py deploy.py
    mailfleet deploy inventories/local.py    # the container cluster: starts its containers first
"""

from pyinfra import host, inventory
from pyinfra.connectors.docker import DockerConnector

from mailfleet.inventory import cluster_from_inventory, data_source
from roles.base import base
from roles.common.journal import config_revision, deploy_recorded, operator
from roles.filter import mail_filter
from roles.loadbalancer import loadbalancer
from roles.mailstore import mailstore
from roles.mta import mta
from roles.redis import redis
from roles.storage import storage

# pyinfra's @docker connector commits and then removes a container that was stopped when it
# connected. A cluster node stores mail, so it stays, whatever state it was in.
if isinstance(host.connector, DockerConnector):
    host.connector.no_stop = True

cluster = cluster_from_inventory(inventory)
node = cluster.node(host.name)

base(cluster, node)

# Before the roles whose data the volume holds, so that they write onto it.
if node.storage is not None:
    storage(cluster, node, data_source(inventory, host.name, "storage"))

if "redis" in node.roles:
    redis(cluster, node)

if "loadbalancer" in node.roles:
    loadbalancer(cluster, node)

if "mta" in node.roles:
    # The filter first: Postfix defers every message while its milter is missing.
    mail_filter(cluster, node)
    mta(cluster, node)

if "mailstore" in node.roles:
    mailstore(cluster, node)

deploy_recorded(
    name="The deploy journal records what this run changed",
    revision=config_revision(),
    operator=operator(),
)
