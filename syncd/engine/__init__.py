"""One sync: fetch each credential once, plan per namespace, write through the cluster port,
link ServiceAccounts, retire, report. Knows no daemon, no CLI."""
