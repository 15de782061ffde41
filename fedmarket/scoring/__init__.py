"""Acting on a trained run at the retailer: its model loaded with the run's window and
statistics (``run_model``), new customers featurised with `data prepare`'s code
(``featurise``), targeting lists, export and the scoring service built on them."""
