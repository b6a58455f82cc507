"""What syncd generates for a config: RBAC, admission policies, the config's JSON schema."""
