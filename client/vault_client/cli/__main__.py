import sys

from vault_client.cli import main

sys.exit(main())
