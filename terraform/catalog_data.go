package terraform

import (
	"sort"
	"strings"
)

// Availability strings are comma-separated alternatives; each is a product
// ("terraform" or "tofu"), optionally followed by ">=" or "<" and a version
// MAJOR.MINOR[.PATCH]. Anything is available when one alternative matches; a
// flag's Availability applies on top of its command's.
const availTofu = "tofu"

func catFlag(name string, kind FlagKind, usage, avail string) Flag {
	return Flag{Name: name, Kind: kind, Usage: usage, Availability: avail}
}

func (f Flag) only(avail string) Flag {
	f.Availability = avail
	return f
}

// catSorted sorts by name so that entries can list flags in reading order.
func catSorted(groups ...[]Flag) []Flag {
	var out []Flag
	for _, g := range groups {
		out = append(out, g...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func catFlags(fs ...Flag) []Flag { return fs }

// Flags shared by many commands.
var (
	cfNoColor         = catFlag("no-color", BoolFlag, "disable coloured output", "")
	cfCompactWarnings = catFlag("compact-warnings", BoolFlag, "print warnings in a shorter summary form", "")
	cfConsolidateWarn = catFlag("consolidate-warnings", BoolFlag, "group repeated warnings together", availTofu)
	cfConsolidateErr  = catFlag("consolidate-errors", BoolFlag, "group repeated errors together", availTofu)
	cfConcise         = catFlag("concise", BoolFlag, "leave out progress messages", availTofu)
	cfInput           = catFlag("input", BoolFlag, "prompt for values that are not set", "")
	cfLock            = catFlag("lock", BoolFlag, "take the state lock (false disables locking)", "")
	cfLockTimeout     = catFlag("lock-timeout", ValueFlag, "keep retrying the state lock for this duration", "")
	cfVar             = catFlag("var", ValueFlag, "set one input variable as NAME=VALUE", "")
	cfVarFile         = catFlag("var-file", ValueFlag, "read input variable values from a file", "")
	cfTarget          = catFlag("target", ValueFlag, "restrict the run to this resource address", "")
	cfTargetFile      = catFlag("target-file", ValueFlag, "read -target addresses from a file", availTofu)
	cfExclude         = catFlag("exclude", ValueFlag, "leave this resource address out of the run", availTofu)
	cfExcludeFile     = catFlag("exclude-file", ValueFlag, "read -exclude addresses from a file", availTofu)
	cfStateIn         = catFlag("state", ValueFlag, "local state file to read (legacy local backend)", "")
	cfStateOut        = catFlag("state-out", ValueFlag, "local state file to write (legacy local backend)", "")
	cfBackup          = catFlag("backup", ValueFlag, "where to put the backup of a local state file", "")
	cfParallelism     = catFlag("parallelism", ValueFlag, "how many graph nodes to walk at once", "")
	cfJSON            = catFlag("json", BoolFlag, "emit machine-readable JSON", "")
	cfIgnoreRemoteVer = catFlag("ignore-remote-version", BoolFlag, "go on even if the remote workspace expects another version", "")
	cfTestDir         = catFlag("test-directory", ValueFlag, "directory holding test files", "terraform>=1.6,tofu")
	cfShowSensitive   = catFlag("show-sensitive", BoolFlag, "print sensitive values instead of hiding them", availTofu)
)

// catViewFlags are removed from argv before flag parsing by the view layer of
// apply, plan, refresh, output, show, validate, test and modules. They are
// matched as exact tokens only, anywhere in argv.
func catViewFlags() []Flag {
	return catFlags(cfNoColor, cfCompactWarnings, cfConsolidateWarn, cfConsolidateErr, cfConcise)
}

// catMetaExtended is what Meta.extendedFlagSet adds (console, import, login,
// workspace show; init uses the same set), plus -no-color which Meta.process
// strips first.
func catMetaExtended() []Flag {
	return catFlags(cfNoColor, cfInput, cfTarget, cfCompactWarnings, cfVar, cfVarFile,
		cfExclude, cfConsolidateWarn, cfConsolidateErr)
}

// catTofuVars: OpenTofu adds -var/-var-file to almost every command so that
// variables can be evaluated early (static evaluation).
func catTofuVars() []Flag {
	return catFlags(cfVar.only(availTofu), cfVarFile.only(availTofu))
}

func catStateFlags() []Flag {
	return catFlags(cfLock, cfLockTimeout, cfStateIn, cfStateOut, cfBackup)
}

func catOperationFlags() []Flag {
	return catFlags(
		cfParallelism,
		catFlag("allow-deferral", BoolFlag, "let the run defer changes it cannot yet plan (experimental)", "terraform>=1.9"),
		catFlag("refresh", BoolFlag, "read remote objects before planning", ""),
		catFlag("destroy", BoolFlag, "plan to destroy every managed object", ""),
		catFlag("refresh-only", BoolFlag, "only reconcile state with remote objects", ""),
		cfTarget, cfTargetFile, cfExclude, cfExcludeFile,
		catFlag("replace", ValueFlag, "force this resource instance to be replaced", ""),
		cfVar, cfVarFile,
	)
}

func catApplyFlags() []Flag {
	return catSorted(catViewFlags(), catStateFlags(), catOperationFlags(), catFlags(
		catFlag("auto-approve", BoolFlag, "skip the interactive confirmation", ""),
		cfInput, cfJSON, cfShowSensitive,
		catFlag("deprecation", ValueFlag, "choose which module deprecation warnings to show", availTofu),
	))
}

func catStateMutatorFlags(extra ...Flag) []Flag {
	return catSorted(catFlags(cfNoColor, cfIgnoreRemoteVer, cfLock, cfLockTimeout), catTofuVars(), extra)
}

func catWorkspaceCommands(group string) []Command {
	cmds := []Command{
		{
			Name:             group + " delete",
			Synopsis:         "remove a workspace and its state",
			Locks:            LockAlways,
			WritesState:      true,
			LockFlag:         true,
			LockTimeoutFlag:  true,
			Operation:        "state-replace-provider", // upstream copy-paste, kept in all versions
			IgnoresInterrupt: true,
			Flags: catSorted(catFlags(cfNoColor, cfLock, cfLockTimeout,
				catFlag("force", BoolFlag, "delete even if the workspace still tracks resources", "")), catTofuVars()),
		},
		{
			Name:             group + " list",
			Synopsis:         "list the workspaces",
			IgnoresInterrupt: true,
			Flags:            catSorted(catFlags(cfNoColor), catTofuVars()),
		},
		{
			Name:             group + " new",
			Synopsis:         "create a workspace and switch to it",
			Locks:            LockConditional,
			WritesState:      true,
			LockFlag:         true,
			LockTimeoutFlag:  true,
			Operation:        "workspace-new",
			IgnoresInterrupt: true,
			Flags: catSorted(catFlags(cfNoColor, cfLock, cfLockTimeout,
				catFlag("state", ValueFlag, "seed the new workspace from this state file", "")), catTofuVars()),
		},
		{
			// Remote backends create the workspace's empty state under an
			// "init" lock when -or-create makes a new one.
			Name:             group + " select",
			Synopsis:         "switch to another workspace",
			Locks:            LockConditional,
			WritesState:      true,
			Operation:        "init",
			IgnoresInterrupt: true,
			Flags: catSorted(catFlags(cfNoColor,
				catFlag("or-create", BoolFlag, "create the workspace if it is missing", "")), catTofuVars()),
		},
	}
	if group != "workspace" {
		for i := range cmds {
			cmds[i].Synopsis = "deprecated alias of workspace" + strings.TrimPrefix(cmds[i].Name, group)
		}
	}
	return cmds
}

var catalog = catBuild()

func catBuild() []Command {
	cmds := []Command{
		{
			Name:                "apply",
			Synopsis:            "carry out a plan, creating, updating or deleting infrastructure",
			Locks:               LockAlways,
			WritesState:         true,
			LockFlag:            true,
			LockTimeoutFlag:     true,
			LockTimeoutHonoured: true,
			Operation:           "OperationTypeApply",
			Flags:               catApplyFlags(),
		},
		{
			Name:             "console",
			Synopsis:         "evaluate expressions interactively",
			Locks:            LockSession,
			Operation:        "OperationTypeInvalid",
			IgnoresInterrupt: true,
			Flags: catSorted(catMetaExtended(), catFlags(
				cfStateIn,
				catFlag("plan", BoolFlag, "evaluate against a freshly computed plan", "terraform>=1.7"),
			)),
		},
		{
			Name:                "destroy",
			Synopsis:            "delete everything the configuration manages",
			Locks:               LockAlways,
			WritesState:         true,
			LockFlag:            true,
			LockTimeoutFlag:     true,
			LockTimeoutHonoured: true,
			Operation:           "OperationTypeApply",
			Flags:               catApplyFlags(),
		},
		{
			Name:     "env",
			Synopsis: "deprecated spelling of the workspace command group",
			Group:    true,
		},
		{
			Name:     "fmt",
			Synopsis: "rewrite configuration files in canonical style",
			// Reads no shutdown channel: SIGINT is swallowed (measured).
			IgnoresInterrupt: true,
			Flags: catSorted(catFlags(
				cfNoColor,
				catFlag("list", BoolFlag, "print names of files that need formatting", ""),
				catFlag("write", BoolFlag, "write the result back to the files", ""),
				catFlag("diff", BoolFlag, "show the formatting changes as a diff", ""),
				catFlag("check", BoolFlag, "exit non-zero if any file needs formatting", ""),
				catFlag("recursive", BoolFlag, "descend into subdirectories", ""),
			)),
		},
		{
			Name:     "force-unlock",
			Synopsis: "release a state lock by its ID",
			// It never takes the lock itself (reference §3).
			IgnoresInterrupt: true,
			Flags: catSorted(catFlags(cfNoColor,
				catFlag("force", BoolFlag, "do not ask for confirmation", "")), catTofuVars()),
		},
		{
			Name:     "get",
			Synopsis: "download the modules the configuration uses",
			Flags: catSorted(catFlags(
				cfNoColor,
				catFlag("update", BoolFlag, "check already installed modules for newer versions", ""),
				cfTestDir,
				cfJSON.only(availTofu),
			), catTofuVars()),
		},
		{
			Name:             "graph",
			Synopsis:         "print the dependency graph in DOT format",
			IgnoresInterrupt: true,
			Flags: catSorted(catFlags(
				cfNoColor,
				catFlag("draw-cycles", BoolFlag, "highlight cycles in the graph", ""),
				catFlag("type", ValueFlag, "which kind of graph to build", ""),
				catFlag("module-depth", ValueFlag, "limit how many module levels are drawn", ""),
				catFlag("verbose", BoolFlag, "draw more detail per node", ""),
				catFlag("plan", ValueFlag, "draw the graph for a saved plan file", ""),
			), catTofuVars()),
		},
		{
			Name:                "import",
			Synopsis:            "adopt an existing remote object into the state",
			Locks:               LockAlways,
			WritesState:         true,
			LockFlag:            true,
			LockTimeoutFlag:     true,
			LockTimeoutHonoured: true,
			Operation:           "OperationTypeInvalid",
			// No shutdown channel is read during the import walk.
			IgnoresInterrupt: true,
			Flags: catSorted(catMetaExtended(), catFlags(
				cfIgnoreRemoteVer, cfParallelism, cfStateIn, cfStateOut, cfBackup,
				catFlag("config", ValueFlag, "directory holding the configuration", ""),
				cfLock, cfLockTimeout,
			)),
		},
		{
			// Only locks while migrating state or changing backend; it
			// can also write "migration destination state", "backend from
			// plan" and, on remote backends, "init".
			Name:                "init",
			Synopsis:            "prepare the working directory: backend, modules, providers",
			Locks:               LockConditional,
			WritesState:         true,
			LockFlag:            true,
			LockTimeoutFlag:     true,
			LockTimeoutHonoured: true,
			Operation:           "migration source state",
			Flags: catSorted(catMetaExtended(), catFlags(
				catFlag("backend", BoolFlag, "configure the backend", ""),
				catFlag("cloud", BoolFlag, "alias of -backend", ""),
				catFlag("backend-config", ValueFlag, "extra backend setting or file", ""),
				catFlag("from-module", ValueFlag, "copy this module into the empty directory first", ""),
				catFlag("get", BoolFlag, "install modules", ""),
				catFlag("force-copy", BoolFlag, "answer yes to state migration prompts", ""),
				cfLock, cfLockTimeout,
				catFlag("reconfigure", BoolFlag, "ignore the saved backend configuration", ""),
				catFlag("migrate-state", BoolFlag, "move existing state to the new backend", ""),
				catFlag("upgrade", BoolFlag, "pick the newest allowed modules and providers", ""),
				catFlag("plugin-dir", ValueFlag, "only look for providers in this directory", ""),
				catFlag("lockfile", ValueFlag, "dependency lock file mode, such as readonly", ""),
				cfIgnoreRemoteVer,
				cfTestDir,
				cfJSON.only("terraform>=1.9,tofu"),
			)),
		},
		{
			Name:     "login",
			Synopsis: "obtain and store an API token for a host",
			Flags:    catSorted(catMetaExtended()),
		},
		{
			Name:             "logout",
			Synopsis:         "forget the stored API token for a host",
			IgnoresInterrupt: true,
			Flags:            catFlags(cfNoColor),
		},
		{
			Name:     "metadata",
			Synopsis: "group of commands that describe the tool itself",
			Group:    true,
		},
		{
			Name:             "metadata functions",
			Synopsis:         "print the signatures of the built-in functions",
			IgnoresInterrupt: true,
			Flags:            catFlags(cfJSON, cfNoColor),
		},
		{
			Name:             "modules",
			Synopsis:         "list the module calls of the configuration",
			IgnoresInterrupt: true,
			Flags:            catSorted(catFlags(cfNoColor, cfCompactWarnings, cfJSON)),
			Availability:     "terraform>=1.10",
		},
		{
			Name:     "output",
			Synopsis: "print root module output values from the state",
			Flags: catSorted(catViewFlags(), catTofuVars(), catFlags(
				cfJSON,
				catFlag("raw", BoolFlag, "print a single string value without quoting", ""),
				cfStateIn,
				cfShowSensitive,
			)),
		},
		{
			Name:                "plan",
			Synopsis:            "show the changes an apply would make",
			Locks:               LockAlways,
			LockFlag:            true,
			LockTimeoutFlag:     true,
			LockTimeoutHonoured: true,
			Operation:           "OperationTypePlan",
			Flags: catSorted(catViewFlags(), catStateFlags(), catOperationFlags(), catFlags(
				catFlag("detailed-exitcode", BoolFlag, "exit 2 when there are changes", ""),
				cfInput,
				catFlag("out", ValueFlag, "save the plan to this file", ""),
				catFlag("generate-config-out", ValueFlag, "write configuration for import blocks to this file", ""),
				cfJSON, cfShowSensitive,
				catFlag("deprecation", ValueFlag, "choose which module deprecation warnings to show", availTofu),
			)),
		},
		{
			Name:             "providers",
			Synopsis:         "show which providers the configuration needs",
			IgnoresInterrupt: true,
			Flags:            catSorted(catFlags(cfNoColor, cfTestDir), catTofuVars()),
		},
		{
			Name:     "providers lock",
			Synopsis: "record provider checksums in the dependency lock file",
			Flags: catSorted(catFlags(
				cfNoColor,
				catFlag("platform", ValueFlag, "add checksums for this OS_ARCH", ""),
				catFlag("fs-mirror", ValueFlag, "take providers from this local mirror directory", ""),
				catFlag("net-mirror", ValueFlag, "take providers from this network mirror URL", ""),
				catFlag("enable-plugin-cache", BoolFlag, "use the global plugin cache", "terraform>=1.8"),
			), catTofuVars()),
		},
		{
			Name:     "providers mirror",
			Synopsis: "copy the required providers into a local directory",
			Flags: catSorted(catFlags(
				cfNoColor,
				catFlag("platform", ValueFlag, "mirror builds for this OS_ARCH", ""),
				catFlag("lock-file", BoolFlag, "honour the dependency lock file", "terraform>=1.9"),
			), catTofuVars()),
		},
		{
			Name:             "providers schema",
			Synopsis:         "print the schemas of the providers in use",
			IgnoresInterrupt: true,
			Flags:            catSorted(catFlags(cfNoColor, cfJSON), catTofuVars()),
		},
		{
			// Refuses to run; it parses no flags at all.
			Name:     "push",
			Synopsis: "retired command; only prints an error",
		},
		{
			Name:                "refresh",
			Synopsis:            "update the state to match remote objects",
			Locks:               LockAlways,
			WritesState:         true,
			LockFlag:            true,
			LockTimeoutFlag:     true,
			LockTimeoutHonoured: true,
			Operation:           "OperationTypeRefresh",
			Flags:               catSorted(catViewFlags(), catStateFlags(), catOperationFlags(), catFlags(cfInput, cfJSON)),
		},
		{
			// Takes no arguments at all; it serves gRPC on stdio.
			Name:         "rpcapi",
			Synopsis:     "internal gRPC server for automation (hidden)",
			Availability: "terraform>=1.13",
		},
		{
			Name:             "show",
			Synopsis:         "print a saved plan or the current state",
			IgnoresInterrupt: true,
			Flags: catSorted(catViewFlags(), catTofuVars(), catFlags(
				cfJSON, cfShowSensitive,
				// OpenTofu's -state is a switch here, unlike elsewhere.
				catFlag("state", BoolFlag, "show the latest state snapshot", availTofu),
				catFlag("plan", ValueFlag, "show this saved plan file", availTofu),
			)),
		},
		{
			// Unknown flags are not errors: they are handed to the plugin.
			Name:     "stacks",
			Synopsis: "run the Terraform Stacks plugin",
			Flags: catFlags(cfNoColor,
				catFlag("plugin-cache-dir", ValueFlag, "directory for the downloaded stacks plugin", "")),
			Availability: "terraform>=1.13",
		},
		{
			Name:     "state",
			Synopsis: "group of advanced state management commands",
			Group:    true,
		},
		{
			Name:             "state identities",
			Synopsis:         "list resource identities recorded in the state",
			IgnoresInterrupt: true,
			Flags: catSorted(catFlags(cfNoColor, cfStateIn, cfJSON,
				catFlag("id", ValueFlag, "only resources with this ID", ""))),
			Availability: "terraform>=1.12",
		},
		{
			Name:             "state list",
			Synopsis:         "list resource addresses in the state",
			IgnoresInterrupt: true,
			Flags: catSorted(catFlags(cfNoColor, cfStateIn,
				catFlag("id", ValueFlag, "only resources with this ID", "")), catTofuVars()),
		},
		{
			Name:                "state mv",
			Synopsis:            "move or rename an address in the state",
			Locks:               LockAlways,
			WritesState:         true,
			LockFlag:            true,
			LockTimeoutFlag:     true,
			LockTimeoutHonoured: true,
			Operation:           "state-mv",
			IgnoresInterrupt:    true,
			Flags: catStateMutatorFlags(
				catFlag("dry-run", BoolFlag, "only print what would move", ""),
				catFlag("backup", ValueFlag, "backup path for the source local state", ""),
				catFlag("backup-out", ValueFlag, "backup path for the destination local state", ""),
				catFlag("state", ValueFlag, "source local state file", ""),
				catFlag("state-out", ValueFlag, "destination local state file", ""),
			),
		},
		{
			Name:             "state pull",
			Synopsis:         "print the raw current state",
			IgnoresInterrupt: true,
			Flags:            catSorted(catFlags(cfNoColor), catTofuVars()),
		},
		{
			Name:                "state push",
			Synopsis:            "overwrite the current state with a local file",
			Locks:               LockAlways,
			WritesState:         true,
			LockFlag:            true,
			LockTimeoutFlag:     true,
			LockTimeoutHonoured: true,
			Operation:           "state-push",
			IgnoresInterrupt:    true,
			Flags: catStateMutatorFlags(
				catFlag("force", BoolFlag, "push even if lineage or serial disagree", ""),
			),
		},
		{
			Name:                "state replace-provider",
			Synopsis:            "change the provider recorded for resources",
			Locks:               LockAlways,
			WritesState:         true,
			LockFlag:            true,
			LockTimeoutFlag:     true,
			LockTimeoutHonoured: true,
			Operation:           "state-replace-provider",
			IgnoresInterrupt:    true,
			Flags: catStateMutatorFlags(
				catFlag("auto-approve", BoolFlag, "skip the interactive confirmation", ""),
				catFlag("backup", ValueFlag, "backup path for the local state", ""),
				catFlag("state", ValueFlag, "local state file to change", ""),
			),
		},
		{
			Name:                "state rm",
			Synopsis:            "forget resources without destroying them",
			Locks:               LockAlways,
			WritesState:         true,
			LockFlag:            true,
			LockTimeoutFlag:     true,
			LockTimeoutHonoured: true,
			Operation:           "state-rm",
			IgnoresInterrupt:    true,
			Flags: catStateMutatorFlags(
				catFlag("dry-run", BoolFlag, "only print what would be removed", ""),
				catFlag("backup", ValueFlag, "backup path for the local state", ""),
				catFlag("state", ValueFlag, "local state file to change", ""),
			),
		},
		{
			Name:             "state show",
			Synopsis:         "print the attributes of one resource in the state",
			IgnoresInterrupt: true,
			Flags:            catSorted(catFlags(cfNoColor, cfStateIn, cfShowSensitive), catTofuVars()),
		},
		{
			Name:                "taint",
			Synopsis:            "mark a resource instance for replacement",
			Locks:               LockAlways,
			WritesState:         true,
			LockFlag:            true,
			LockTimeoutFlag:     true,
			LockTimeoutHonoured: true,
			Operation:           "taint",
			IgnoresInterrupt:    true,
			Flags: catStateMutatorFlags(
				catFlag("allow-missing", BoolFlag, "succeed even if the resource is absent", ""),
				cfBackup, cfStateIn, cfStateOut,
			),
		},
		{
			Name:     "test",
			Synopsis: "run the configuration's test files",
			Flags: catSorted(catViewFlags(), catFlags(
				cfVar.only("terraform>=1.6,tofu"),
				cfVarFile.only("terraform>=1.6,tofu"),
				catFlag("filter", ValueFlag, "only run this test file", "terraform>=1.6,tofu"),
				cfTestDir,
				cfJSON.only("terraform>=1.6,tofu"),
				catFlag("junit-xml", ValueFlag, "also write results as JUnit XML to this file", "terraform<1.6,terraform>=1.8"),
				catFlag("verbose", BoolFlag, "print plans and state for each run block", "terraform>=1.6,tofu"),
				catFlag("cloud-run", ValueFlag, "run the tests remotely for this registry module", "terraform>=1.6"),
				catFlag("parallelism", ValueFlag, "how many graph nodes each run walks at once", "terraform>=1.12"),
				catFlag("run-parallelism", ValueFlag, "how many run blocks may run at once", "terraform>=1.13"),
			)),
		},
		{
			Name:                "untaint",
			Synopsis:            "clear the tainted mark from a resource instance",
			Locks:               LockAlways,
			WritesState:         true,
			LockFlag:            true,
			LockTimeoutFlag:     true,
			LockTimeoutHonoured: true,
			Operation:           "untaint",
			IgnoresInterrupt:    true,
			Flags: catStateMutatorFlags(
				catFlag("allow-missing", BoolFlag, "succeed even if the resource is absent", ""),
				cfBackup, cfStateIn, cfStateOut,
			),
		},
		{
			Name:             "validate",
			Synopsis:         "check the configuration for errors",
			IgnoresInterrupt: true,
			Flags: catSorted(catViewFlags(), catTofuVars(), catFlags(
				cfJSON, cfTestDir,
				catFlag("no-tests", BoolFlag, "skip validating test files", "terraform>=1.6,tofu"),
			)),
		},
		{
			// The top-level -v, -version and --version shortcuts rewrite any
			// command line into "version ...", so these two are mostly
			// reached that way.
			Name:             "version",
			Synopsis:         "print the version of the binary and its providers",
			IgnoresInterrupt: true,
			Flags: catFlags(cfJSON, cfNoColor,
				catFlag("v", BoolFlag, "accepted and ignored", ""),
				catFlag("version", BoolFlag, "accepted and ignored", "")),
		},
		{
			Name:     "workspace",
			Synopsis: "group of commands that manage workspaces",
			Group:    true,
		},
		{
			Name:             "workspace show",
			Synopsis:         "print the name of the current workspace",
			IgnoresInterrupt: true,
			Flags:            catSorted(catMetaExtended()),
		},
	}
	cmds = append(cmds, catWorkspaceCommands("workspace")...)
	// The deprecated "env" words dispatch to the same implementations; there
	// is no "env show".
	cmds = append(cmds, catWorkspaceCommands("env")...)
	// OpenTofu registers aliases that share the flags of their targets.
	for _, a := range []struct{ alias, target, synopsis string }{
		{"state ls", "state list", "alias of state list"},
		{"state move", "state mv", "alias of state mv"},
		{"state remove", "state rm", "alias of state rm"},
	} {
		for _, c := range cmds {
			if c.Name == a.target {
				c.Name = a.alias
				c.Synopsis = a.synopsis
				c.Availability = availTofu
				cmds = append(cmds, c)
				break
			}
		}
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	return cmds
}
