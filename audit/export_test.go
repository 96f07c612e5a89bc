package audit

// SetSearchLimits changes how Sessions searches, for a test of each path:
// drive is the most rows a filter may admit to drive the search, scan the
// most of the newest sessions checked in turn first.
func SetSearchLimits(drive, scan int) (restore func()) {
	d, s := driveMax, scanMax
	driveMax, scanMax = drive, scan
	return func() { driveMax, scanMax = d, s }
}

// SetSynchronous changes SQLite's synchronous setting for logs opened
// afterwards, for a benchmark of its cost.
func SetSynchronous(mode string) (restore func()) {
	old := synchronous
	synchronous = mode
	return func() { synchronous = old }
}

// RowHash is the hash a row with this content has after prev.
func RowHash(prev string, e *Event) string { return rowHash(prev, e) }
