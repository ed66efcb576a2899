"""The `timm-compat` command: report, merge, diff, repro, bisect and bench."""
