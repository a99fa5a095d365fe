"""mailfleet: deploy and verify a distributed mail cluster with pyinfra and testinfra."""
