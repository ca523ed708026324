"""The keys the e2e modules hand out, in one place: the log scan (tests/e2e/test_zz_log_scan.py)
checks that none of them reached a log. The hostile-client keys live in tests/hostile.py."""

# The module-scoped edge of tests/e2e/conftest.py.
PROVIDER_KEY = "sk-provider-e2e-0123456789"
CLIENT_KEY = "sk-client-e2e-9876543210"
# tests/e2e/test_providers.py
PROVIDERS_OPENAI_KEY, PROVIDERS_ANTHROPIC_KEY, PROVIDERS_AZURE_KEY = "sk-oa-provider-1111", "sk-ant-provider-2222", "az-provider-3333"
PROVIDERS_CLIENT_KEY = "sk-client-4444"
# tests/e2e/test_cache.py
CACHE_KEY_A, CACHE_KEY_B = "sk-tenant-a-1111", "sk-tenant-b-2222"
# tests/e2e/test_budgets.py
BUDGET_KEY = "sk-budget-key-0001"
# tests/e2e/test_security.py: client keys, the provider's key, and a key only Redis knows.
SECURITY_KEY_A, SECURITY_KEY_B, SECURITY_KEY_PII = "sk-edge-tenant-a-0001", "sk-edge-tenant-b-0002", "sk-edge-pii-0003"
SECURITY_PROVIDER_KEY = "sk-provider-sec"
SECURITY_REDIS_KEY = "sk-from-redis"
# tests/e2e/test_operations.py: provider keys, then client keys of two tenants and a cheap one.
OPERATIONS_OPENAI_KEY, OPERATIONS_AZURE_KEY, OPERATIONS_ANTHROPIC_KEY = "sk-ops-oa-5555", "az-ops-6666", "sk-ant-ops-7777"
OPERATIONS_KEY_A, OPERATIONS_KEY_B, OPERATIONS_CHEAP_KEY = "sk-ops-alpha-0001", "sk-ops-beta-0002", "sk-ops-cheap-0003"
# tests/e2e/test_responses.py
RESPONSES_KEY, RESPONSES_BUDGET_KEY = "sk-responses-client-0001", "sk-responses-budget-0002"
