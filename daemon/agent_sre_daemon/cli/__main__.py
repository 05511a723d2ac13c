import sys

from agent_sre_daemon.cli.main import main

sys.exit(main())
