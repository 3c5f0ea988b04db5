"""Built-in plugins: push providers (``vault.push``) and plan/device policies (``vault.policies``)."""
