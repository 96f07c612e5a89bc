// Package lock finds where a terraform state's lock lives and watches it.
//
// This first version only discovers the backend, workspace and state key of
// a working directory; observers come with lock observation.
package lock
