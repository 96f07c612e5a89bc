// Package policy decides, before terraform starts, whether a command may run
// and with which added arguments: it evaluates rules against a description
// of the command (Input) and returns a Decision that names the rule and where
// it is written.
//
// This first version carries the built-in rules only, but rules are already
// data (name, source, action, match), so the HCL policy language adds rules
// from files without changing the shape of a Decision.
package policy
