"""Push delivery: the provider interface that ``vault.push`` plugins implement."""
