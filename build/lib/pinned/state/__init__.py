"""pinned's pure core: the state file model, observed state, the plan and its rendering."""
