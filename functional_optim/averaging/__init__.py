"""Weight averaging: SWA and EMA as pure transforms, AveragedModel, update_bn."""
