"""pyinfra roles, one package each, applied by deploy.py to the hosts of their inventory group."""
