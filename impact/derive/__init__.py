"""``impact derive``: the five contract tables from Statistics Denmark's register extracts."""
