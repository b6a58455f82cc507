"""The metric names of SPEC §5, plus the verification and pull-failure counters the README adds: what tests expect."""

SPEC_METRICS = [
    "syncd_sync_runs_total",
    "syncd_sync_duration_seconds",
    "syncd_last_success_timestamp_seconds",
    "syncd_source_requests_total",
    "syncd_credential_expiry_timestamp_seconds",
    "syncd_secret_writes_total",
    "syncd_namespaces",
    "syncd_leader",
    "syncd_config_reloads_total",
    "syncd_build_info",
    "syncd_credential_verifications_total",
    "syncd_image_pull_failures_total",
    "syncd_status_writes_total",
    "syncd_admission_requests_total",
    "syncd_admission_duration_seconds",
    "syncd_pods_repaired_total",
    "syncd_vault_lease_renewals_total",
    "syncd_vault_lease_revocations_total",
]
