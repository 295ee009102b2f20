"""The HTTP core both fake APIs share: the object store, the threaded server and its faults, accounts, times and webhooks."""
