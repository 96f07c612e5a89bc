// Package lab runs the loopback servers and finds the terraform builds that tests, benchmarks and tfsh lab use.
//
// The lab is made of real parts on 127.0.0.1 (DESIGN.md, "Lab"):
//
//   - terraform 1.5.7 and OpenTofu 1.10.10, built by scripts/setup-lab.sh into [CacheDir]
//     and found by [FindTerraform] and [FindTofu];
//   - an S3 server, gofakes3 with its in-memory backend, run in-process by [StartS3]; it honours
//     If-None-Match: * on PutObject, so OpenTofu's S3 lockfile really excludes;
//   - a DynamoDB server, dynalite (Node) in memory, run as a child process by [StartDynamo] from
//     the copy scripts/setup-lab.sh installed ([FindDynalite]).
//
// [StartServer] runs both for tfsh lab, with a bucket and lock table ready, and describes them in
// a state file ([State]) with the backend settings rendered from the examples' own templates;
// [Launch] starts such a server detached from its caller, [Stop] ends it.
//
// [Env] gives the environment to run terraform against them. The configurations to run live in
// examples/lab; package labtest wraps all of this for tests.
package lab
