// Package hooks owns a project's hooks: it reads .tfsh/hooks.hcl and, when
// the shell reports an event, runs the matching local programs and posts
// the matching signed webhooks, each bounded by its timeout, and says which
// results refuse the command.
//
// # File format
//
// A hooks file holds hook blocks and nothing else. Values are literals:
// there are no variables or functions.
//
//	hook "ticket-check" {
//	  on         = ["before_command"]      # required: one or more of Events
//	  commands   = ["apply", "state"]      # optional: only these subcommands ("state" covers "state mv")
//	  on_failure = "refuse"                # or "continue"; default "refuse"
//	  exec {
//	    argv    = ["./scripts/check-ticket", "--strict"]  # required; never run through a shell
//	    timeout = "5s"                                     # default "10s", at most "1h"
//	  }
//	}
//
//	hook "notify-oncall" {
//	  on = ["lock_orphaned", "lock_contention"]
//	  webhook {
//	    url        = "https://hooks.example.test/tfsh"  # https, or http to 127.0.0.0/8, ::1, localhost
//	    secret_env = "TFSH_HOOK_SECRET"                 # optional: signs with the key in this variable
//	    timeout    = "10s"                              # bounds the whole delivery, retries included
//	    retries    = 3                                  # attempts after the first, 0 to 10; default 3
//	    headers    = { "X-Team" = "infra" }             # optional
//	    insecure   = false                              # true allows http:// to any host
//	  }
//	}
//
// A hook has exactly one exec or webhook block. Names are unique in a file.
// Command names are written as typed after terraform, lower case, single
// spaces. A hook with commands only runs for events that carry a command.
// Headers cannot set Content-Type, Content-Length, Host, Transfer-Encoding,
// Connection or the X-Tfsh-* headers. A URL cannot carry a user or password.
// Parse reports every problem of a file at once, each at its file:line:col.
//
// # Running
//
// Each hook gets one JSON object (see Event). An exec hook reads it as one
// line on its standard input; it runs in the project root, in its own
// process group, with TFSH_EVENT and TFSH_HOOK in its environment. On its
// timeout the group gets SIGTERM and, two seconds later, SIGKILL. Exit 0 is
// success. argv[0] with a slash resolves against the project root, a bare
// name through PATH (absolute entries only).
//
// A webhook is a POST of the same JSON with the headers X-Tfsh-Event,
// X-Tfsh-Delivery (one ID for all attempts of a delivery) and, when
// secret_env is set, X-Tfsh-Signature-256 (see Sign). A secret_env whose
// variable is empty sends nothing. 2xx is success; network errors, 429 and
// 5xx are retried after 200ms, 400ms, 800ms, … or the Retry-After the
// receiver asks for, as long as the attempt fits in the timeout; other
// answers, redirects included (never followed), fail at once.
//
// Only before_command hooks can refuse: see Result.Refuses.
package hooks
