// Package shell owns the one pipeline every tfsh mode runs a command
// through (Session.Run: interpret, discover, decide, record, run, record),
// and the modes around it: the interactive prompt, scripts and builtins.
package shell
