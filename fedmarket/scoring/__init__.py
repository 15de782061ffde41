"""Acting on a trained run at the retailer: its model loaded with the run's window and
statistics (``run_model``), new customers featurised with `data prepare`'s code
(``featurise``), scored (``batch``), selected with a control group (``targeting``), the
campaign's realised lift (``campaign``); export and the scoring service build on them."""
