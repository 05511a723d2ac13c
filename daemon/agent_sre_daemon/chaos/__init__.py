"""The chaos engine in the daemon: experiments' lifecycle, the fault stage, run results."""
