"""The signals study: every learning signal on every regime at an equal budget
(`bbpes run signals`). `problem` says what a regime is, `grid` runs the competition,
`leaderboard` ranks it and writes the verdicts."""
