package auditgen

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tfsh/tfsh/lock"
)

// actor is someone who runs tfsh: a person on their own machine, or a CI
// runner. An actor runs one session at a time, so that crash detection
// (which looks at the live sessions of a host) sees only what a real host
// would.
type actor struct {
	user, host string
	ci         bool
	provider   string // github, gitlab (CI runners)
	home       string // where checkouts live
	keys       []*stateKey
	weights    []float64 // popularity of keys, same order
	busyUntil  time.Time
	pid        int // the last process started
	ticks      int64
}

// who is the Who of the locks the actor's terraform takes.
func (a *actor) who() string { return a.user + "@" + a.host }

// nextPID returns a new process ID on the actor's machine.
func (a *actor) nextPID(r *rand.Rand) int {
	a.pid += 1 + r.IntN(40)
	if a.pid > 4_000_000 {
		a.pid = 300 + r.IntN(1000)
	}
	return a.pid
}

// stateKey is one terraform state: an S3 key (DynamoDB, lockfile or both)
// or a local file.
type stateKey struct {
	key     string // the state_key column: bucket/key for S3, the file's path for local
	backend string // s3, local
	dir     string // the configuration's directory inside a checkout
	mechs   []lock.Mechanism
	where   []string // where each mechanism's record lives
	path    string   // LockInfo's Path
	tool    tool
	owner   *actor // local state: the only one who uses it

	busyUntil time.Time
}

// tool is the terraform or tofu a state is run with.
type tool struct {
	name, version, path string
}

var (
	terraform157 = tool{"terraform", "1.5.7", "/usr/local/bin/terraform"}
	tofu110      = tool{"tofu", "1.10.10", "/usr/local/bin/tofu"}
)

var people = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
	"karl", "lena", "mallory", "nina", "oscar", "peggy", "quinn", "rupert", "sybil", "trent", "ursula",
	"victor", "wendy", "xavier", "yara", "zoe", "amir", "bea", "chen", "dmitri", "elif", "farid",
	"gita", "hugo", "ines", "jonas", "kofi", "lucia", "mateo", "noor"}

var apps = []string{"network", "dns", "iam", "eks", "rds", "payments", "checkout", "search", "billing",
	"identity", "observability", "edge", "kafka", "datalake", "mail", "ledger", "catalog", "media"}

var envs = []string{"prod", "staging", "dev"}

const (
	lockTable = "acme-tf-locks"
	gitServer = "https://git.acme.example"
)

// world builds the team and the states from the options and the seed.
func newWorld(r *rand.Rand, users, keys int) ([]*actor, []*stateKey) {
	nci := users / 5
	if nci < 1 && users > 1 {
		nci = 1
	}
	nhuman := users - nci
	var actors []*actor
	for i := 0; i < nhuman; i++ {
		name := people[i%len(people)]
		if i >= len(people) {
			name = fmt.Sprintf("%s%d", name, i/len(people)+1)
		}
		host := name + []string{"-laptop", "-mbp", "-ws", "-thinkpad"}[r.IntN(4)]
		actors = append(actors, &actor{user: name, host: host, home: "/home/" + name + "/src/infra",
			pid: 2000 + r.IntN(60000), ticks: int64(5_000_000 + r.IntN(200_000_000))})
	}
	for i := 0; i < nci; i++ {
		a := &actor{ci: true, pid: 1000 + r.IntN(20000), ticks: int64(5_000_000 + r.IntN(200_000_000))}
		if i%3 == 2 {
			a.provider, a.user, a.host = "gitlab", "gitlab-runner", fmt.Sprintf("gl-runner-%02d", i/3+1)
			a.home = "/builds/acme/infra"
		} else {
			a.provider, a.user, a.host = "github", "runner", fmt.Sprintf("gha-runner-%02d", i-i/3+1)
			a.home = "/home/runner/work/infra/infra"
		}
		actors = append(actors, a)
	}

	var states []*stateKey
	for i := 0; i < keys; i++ {
		if i%6 == 5 && nhuman > 0 {
			// A person's sandbox, on local state.
			owner := actors[(i/6)%nhuman]
			name := []string{"sandbox", "spike", "scratch", "poc"}[(i/6)%4]
			dir := fmt.Sprintf("/home/%s/src/%s-%d", owner.user, name, i)
			states = append(states, &stateKey{key: dir + "/terraform.tfstate", backend: "local",
				dir: dir, mechs: []lock.Mechanism{lock.Local}, where: []string{dir + "/terraform.tfstate"},
				path: "terraform.tfstate", tool: terraform157, owner: owner})
			continue
		}
		n := i - i/6
		env := envs[n%len(envs)]
		app := apps[(n/len(envs))%len(apps)]
		if round := n / (len(envs) * len(apps)); round > 0 {
			app = fmt.Sprintf("%s-%d", app, round+1)
		}
		bucket := "acme-tfstate-" + env
		key := env + "/" + app + "/terraform.tfstate"
		k := &stateKey{key: bucket + "/" + key, backend: "s3", dir: "live/" + env + "/" + app,
			path: bucket + "/" + key, tool: terraform157}
		switch n % 7 {
		case 3, 6:
			// Moved to OpenTofu and its S3 lockfile.
			k.tool, k.mechs = tofu110, []lock.Mechanism{lock.S3Lockfile}
			k.where = []string{"s3://" + bucket + "/" + key + ".tflock"}
		case 5:
			// In the middle of that move: both records.
			k.tool, k.mechs = tofu110, []lock.Mechanism{lock.DynamoDB, lock.S3Lockfile}
			k.where = []string{"dynamodb://" + lockTable + "/" + bucket + "/" + key, "s3://" + bucket + "/" + key + ".tflock"}
		default:
			k.mechs = []lock.Mechanism{lock.DynamoDB}
			k.where = []string{"dynamodb://" + lockTable + "/" + bucket + "/" + key}
		}
		states = append(states, k)
	}

	// Teams: each person works on a few apps across environments, plus
	// their own sandbox; CI runs everything shared.
	var shared []*stateKey
	for _, k := range states {
		if k.owner == nil {
			shared = append(shared, k)
		}
	}
	for _, a := range actors {
		if a.ci {
			a.keys = shared
			continue
		}
		want := 3 + r.IntN(5)
		seen := map[*stateKey]bool{}
		for j := 0; j < want*3 && len(a.keys) < want && len(shared) > 0; j++ {
			k := shared[r.IntN(len(shared))]
			if !seen[k] {
				seen[k] = true
				a.keys = append(a.keys, k)
			}
		}
		for _, k := range states {
			if k.owner == a {
				a.keys = append(a.keys, k)
			}
		}
	}
	for _, a := range actors {
		a.weights = make([]float64, len(a.keys))
		for j := range a.keys {
			// Zipf-like: a few states see most of the work.
			a.weights[j] = 1 / float64(j+1)
		}
		if len(a.keys) == 0 && len(states) > 0 {
			a.keys, a.weights = states[:1], []float64{1}
		}
	}
	return actors, states
}

// pick returns an index drawn with the given weights, or -1 when none
// qualifies.
func pick(r *rand.Rand, weights []float64, ok func(int) bool) int {
	total := 0.0
	for i, w := range weights {
		if ok(i) {
			total += w
		}
	}
	if total == 0 {
		return -1
	}
	x := r.Float64() * total
	for i, w := range weights {
		if !ok(i) {
			continue
		}
		if x < w {
			return i
		}
		x -= w
	}
	for i := len(weights) - 1; i >= 0; i-- {
		if ok(i) {
			return i
		}
	}
	return -1
}
