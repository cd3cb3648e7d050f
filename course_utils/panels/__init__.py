"""Every lesson's interactive panel, one module per panel."""
