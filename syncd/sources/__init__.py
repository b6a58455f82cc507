"""Credential sources: Vault/OpenBao, Docker credential helpers, docker config.json files."""
