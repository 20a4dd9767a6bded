# bash completion for dshell. Generated from the command tree by
#   python -m dshell.completion --write completions/
# Do not edit: regenerate. Install: `source <(dshell completion bash)` in ~/.bashrc, or copy
# this file to ~/.local/share/bash-completion/completions/dshell.
# Verbs, sub-verbs and options are below; live values (task ids, services, agents, namespace
# paths) come from `dshell __complete KIND PREFIX`, which answers within about a second.

# The command at PATH ($1): its sub-verbs (and their descriptions), options, options
# that take a value, and whether options may follow arguments.
_dshell_node() {
    _dshell_subs= _dshell_opts= _dshell_vopts= _dshell_inter=1
    _dshell_descs=()
    case "$1" in
        '')
            _dshell_subs='ps inspect run exec kill top svc job fw mount umount ls cd pwd cat tail nodes drain maint quota reserve unreserve vol events wait backends engine completion help'
            _dshell_descs=('ps:List tasks of every mount under PATH (default: the current path).' 'inspect:Show one task (id, unique prefix or path) with its full state history.' 'run:Launch a task: `run [OPTIONS] -- CMD [ARGS…]` (argv, no shell) or...' 'exec:Run COMMAND in a running task'\''s sandbox, environment and cgroups.' 'kill:Stop tasks: SIGTERM to the task'\''s session, the grace period, then...' 'top:Live view of agents and tasks with CPU %, RSS and allocated vs used.' 'svc:Long-running services: deploy, scale, restart, roll back, wait...' 'job:Batch jobs: run now, on cron or ISO 8601 schedules, or after other...' 'fw:Nested frameworks: launched as services of a cluster, then mounted...' 'mount:Attach a cluster at TARGET; bare `mount` lists the mount table (and...' 'umount:Detach the cluster mounted at TARGET.' 'ls:List a namespace directory (/, a mount, its tasks, agents, svc,...' 'cd:Change the current namespace path (the REPL and runbooks keep it...' 'pwd:Print the current namespace path.' 'cat:Print files of task sandboxes (`cat /local/tasks/ID/stdout`, or...' 'tail:Print the end of a task'\''s output (a sandbox path or a task id); -f...' 'nodes:List the agents (nodes) of every mount under PATH with total,...' 'drain:Drain NODE (an id, or /MOUNT/agents/ID): no new work is placed on it.' 'maint:Maintenance windows: a node is drained ahead of its window (see...' 'quota:Quota limits and weights of roles (Mesos quota limits and role...' 'reserve:Reserve part of NODE for ROLE (cpus=N mem=MiB disk=MiB; Mesos...' 'unreserve:Give back ROLE'\''s reservation on NODE: all of it, or the sizes given...' 'vol:Persistent volumes: reserved disk shares with a directory on one...' 'events:Stream state changes of every mount under PATH, each with its...' 'wait:Wait until each task reaches a state; print the tasks.' 'backends:List backend plugins (entry points in group dshell.backends) with...' 'engine:Control the embedded engine (the /local cluster).' 'completion:Print a completion script: `source <(dshell completion bash)`.' 'help:List verbs, or show the help of one (`help svc deploy`).')
            _dshell_opts='--version --debug --color -h --help'
            _dshell_vopts='--color'
            ;;
        'ps')
            _dshell_opts='--state --service -w --watch --sort-by -l --selector -a --all --limit -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--state --service --sort-by -l --selector --limit -o --output'
            ;;
        'inspect')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'run')
            _dshell_opts='--shell --name --cpus --mem --disk --env -e --port --instances --role --tier --priority --label -C --constraint --volume --idempotency-key --after --partition --on -f --file --format --bind --job --dry-run -d --detach -i --interactive -t --tty -h --help'
            _dshell_vopts='--shell --name --cpus --mem --disk --env -e --port --instances --role --tier --priority --label -C --constraint --volume --idempotency-key --after --partition --on -f --file --format --bind --job'
            _dshell_inter=0
            ;;
        'exec')
            _dshell_opts='-i --interactive -t --tty --env -e -h --help'
            _dshell_vopts='--env -e'
            _dshell_inter=0
            ;;
        'kill')
            _dshell_opts='-s --signal --grace --scale -y --yes -o --output -q --quiet --raw -h --help'
            _dshell_vopts='-s --signal --grace -o --output'
            ;;
        'top')
            _dshell_opts='-n --iterations -d --delay -o --output -q --quiet --raw -h --help'
            _dshell_vopts='-n --iterations -d --delay -o --output'
            ;;
        'svc')
            _dshell_subs='abort deploy deployments diff endpoints logs ls pause restart resume rm rollback scale show start status stop versions wait'
            _dshell_descs=('abort:Abort the running deployment, leaving the instances as they are.' 'deploy:Deploy (or update) services from a spec `-f FILE` or from flags...' 'deployments:The recent deployments of a service, the running one last.' 'diff:Compare a spec file with the deployed service: exit 0 same, 1...' 'endpoints:host:port of each running instance per named port (-q: one address...' 'logs:Output of every instance, merged, each line prefixed with its...' 'ls:List services of every mount under PATH.' 'pause:Pause the running deployment where it is.' 'restart:Restart every instance, rolling (a new version of the same config).' 'resume:Resume a paused deployment.' 'rm:Stop a service (or every service of a group) and forget it.' 'rollback:Go back to the previous version (or --to VERSION), rolling.' 'scale:Set the number of instances (a rolling change within the upgrade...' 'show:Print a service'\''s spec (a file `svc deploy -f` takes back).' 'start:Start a stopped service at its instance count.' 'status:A service: state, version, deployment and each instance (agent,...' 'stop:Stop every instance (dependants first); `svc start` brings them back.' 'versions:The versions of a service'\''s configuration (current: *).' 'wait:Wait until a service is healthy (or deployed, or stopped).')
            _dshell_opts='-h --help'
            ;;
        'svc abort')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'svc deploy')
            _dshell_opts='-f --file --format --bind --job --name --instances --cpus --mem --port --env -e --shell --volume --tier --priority --on --dry-run --force --rollback-on-failure -o --output -q --quiet --raw --wait --no-wait --timeout -h --help'
            _dshell_vopts='-f --file --format --bind --job --name --instances --cpus --mem --port --env -e --volume --tier --priority --on -o --output --timeout'
            _dshell_inter=0
            ;;
        'svc deployments')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'svc diff')
            _dshell_opts='-f --file --format --bind --job -h --help'
            _dshell_vopts='-f --file --format --bind --job'
            ;;
        'svc endpoints')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'svc logs')
            _dshell_opts='-f --follow --stderr -h --help'
            ;;
        'svc ls')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'svc pause')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'svc restart')
            _dshell_opts='--wait --no-wait --timeout -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--timeout -o --output'
            ;;
        'svc resume')
            _dshell_opts='--wait --no-wait --timeout -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--timeout -o --output'
            ;;
        'svc rm')
            _dshell_opts='--wait --no-wait --timeout -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--timeout -o --output'
            ;;
        'svc rollback')
            _dshell_opts='--wait --no-wait --timeout -o --output -q --quiet --raw --to -h --help'
            _dshell_vopts='--timeout -o --output --to'
            ;;
        'svc scale')
            _dshell_opts='--wait --no-wait --timeout -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--timeout -o --output'
            ;;
        'svc show')
            _dshell_opts='-o --format --version -h --help'
            _dshell_vopts='-o --format --version'
            ;;
        'svc start')
            _dshell_opts='--wait --no-wait --timeout -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--timeout -o --output'
            ;;
        'svc status')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'svc stop')
            _dshell_opts='--wait --no-wait --timeout -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--timeout -o --output'
            ;;
        'svc versions')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'svc wait')
            _dshell_opts='--healthy --deployed --stopped --timeout -h --help'
            _dshell_vopts='--timeout'
            ;;
        'job')
            _dshell_subs='create graph history kill ls pause resume rm run show'
            _dshell_descs=('create:Create jobs from a spec `-f FILE` or from flags `--name N [...] --...' 'graph:The dependency graph of the jobs under PATH (`-o dot | dot -Tsvg >...' 'history:The runs of a job, oldest first: state, cause, duration, attempts,...' 'kill:Kill the active runs of a job, or only RUN (no retry follows).' 'ls:List the jobs of every mount under PATH.' 'pause:Stop scheduling a job (due times pass without runs).' 'resume:Schedule a paused job again (from now on: no catch-up).' 'rm:Kill a job'\''s active runs and forget the job and its history.' 'run:Start a run now (prints JOB/RUN).' 'show:A job: schedule, next runs, last success/failure, counts and its...')
            _dshell_opts='-h --help'
            ;;
        'job create')
            _dshell_opts='-f --file --format --bind --job --name --schedule --tz --deadline --concurrency --after --retries --backoff --timeout --grace --cpus --mem --env -e --shell --replace --on -o --output -q --quiet --raw -h --help'
            _dshell_vopts='-f --file --format --bind --job --name --schedule --tz --deadline --concurrency --after --retries --backoff --timeout --grace --cpus --mem --env -e --on -o --output'
            _dshell_inter=0
            ;;
        'job graph')
            _dshell_opts='-o --output -q --quiet -h --help'
            _dshell_vopts='-o --output'
            ;;
        'job history')
            _dshell_opts='-o --output -q --quiet --raw --limit -h --help'
            _dshell_vopts='-o --output --limit'
            ;;
        'job kill')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'job ls')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'job pause')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'job resume')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'job rm')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'job run')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'job show')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'fw')
            _dshell_subs='launch ls rm'
            _dshell_descs=('launch:Launch a framework of KIND (engine, ray…) and mount it at...' 'ls:List the frameworks of every mount under PATH: kind, host, state...' 'rm:Unmount framework NAME (or HOST/fw/NAME) and stop its whole process...')
            _dshell_opts='-h --help'
            ;;
        'fw launch')
            _dshell_opts='--name --on -o --cpus --mem --disk --ports --timeout --output -q --quiet --raw -h --help'
            _dshell_vopts='--name --on -o --cpus --mem --disk --ports --timeout --output'
            ;;
        'fw ls')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'fw rm')
            _dshell_opts='--timeout -h --help'
            _dshell_vopts='--timeout'
            ;;
        'mount')
            _dshell_opts='-t --type -o --output -q --quiet --raw -h --help'
            _dshell_vopts='-t --type -o --output'
            ;;
        'umount')
            _dshell_opts='-h --help'
            ;;
        'ls')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'cd')
            _dshell_opts='-h --help'
            ;;
        'pwd')
            _dshell_opts='-h --help'
            ;;
        'cat')
            _dshell_opts='--stderr -h --help'
            ;;
        'tail')
            _dshell_opts='-f --follow -n --lines --stderr -h --help'
            _dshell_vopts='-n --lines'
            ;;
        'nodes')
            _dshell_subs='attr ls up'
            _dshell_descs=('attr:Set (key=value) or remove (key-) attributes of NODE.' 'ls:List the agents of every mount under PATH (the default sub-verb).' 'up:Return a drained NODE to service (stops a drain in progress; on the...')
            _dshell_opts='-h --help'
            ;;
        'nodes attr')
            _dshell_opts='--on -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--on -o --output'
            ;;
        'nodes ls')
            _dshell_opts='--sort-by -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--sort-by -o --output'
            ;;
        'nodes up')
            _dshell_opts='--on -h --help'
            _dshell_vopts='--on'
            ;;
        'drain')
            _dshell_opts='--reason --on --grace --wait --timeout -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--reason --on --grace --timeout -o --output'
            ;;
        'maint')
            _dshell_subs='cancel ls schedule'
            _dshell_descs=('cancel:Cancel the next (or current) maintenance window of NODE, or --all...' 'ls:List the maintenance windows, earliest first: SCHEDULED, DRAINING...' 'schedule:Schedule a maintenance window of NODE (windows of one node may not...')
            _dshell_opts='-h --help'
            ;;
        'maint cancel')
            _dshell_opts='--all --on -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--on -o --output'
            ;;
        'maint ls')
            _dshell_opts='--on -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--on -o --output'
            ;;
        'maint schedule')
            _dshell_opts='--start --duration --on -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--start --duration --on -o --output'
            ;;
        'quota')
            _dshell_subs='ls rm set'
            _dshell_descs=('ls:List the roles with a quota, a weight, a reservation or work:...' 'rm:Remove the limits and weight of ROLE (its waiting tasks may start;...' 'set:Set limits of ROLE (cpus=N mem=MiB disk=MiB) and/or its weight=N;...')
            _dshell_opts='-h --help'
            ;;
        'quota ls')
            _dshell_opts='--on -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--on -o --output'
            ;;
        'quota rm')
            _dshell_opts='--on -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--on -o --output'
            ;;
        'quota set')
            _dshell_opts='--on -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--on -o --output'
            ;;
        'reserve')
            _dshell_opts='--on -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--on -o --output'
            ;;
        'unreserve')
            _dshell_opts='--on -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--on -o --output'
            ;;
        'vol')
            _dshell_subs='ls rm show'
            _dshell_descs=('ls:List every volume (attached or not) with its size (MiB), agent,...' 'rm:Destroy a volume and its data, giving its disk back; refused (12)...' 'show:Show one volume (NAME, or its path /MOUNT/vol/NAME).')
            _dshell_opts='-h --help'
            ;;
        'vol ls')
            _dshell_opts='--on -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--on -o --output'
            ;;
        'vol rm')
            _dshell_opts='--on -h --help'
            _dshell_vopts='--on'
            ;;
        'vol show')
            _dshell_opts='--on -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--on -o --output'
            ;;
        'events')
            _dshell_opts='--since --no-follow -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--since -o --output'
            ;;
        'wait')
            _dshell_opts='--for --timeout -o --output -q --quiet --raw -h --help'
            _dshell_vopts='--for --timeout -o --output'
            ;;
        'backends')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'engine')
            _dshell_subs='start status stop'
            _dshell_descs=('start:Start the engine daemon if it is not running; re-adopts tasks left...' 'status:pid, version, socket, state dir, agents and the isolation in force.' 'stop:Stop the engine daemon.')
            _dshell_opts='-h --help'
            ;;
        'engine start')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'engine status')
            _dshell_opts='-o --output -q --quiet --raw -h --help'
            _dshell_vopts='-o --output'
            ;;
        'engine stop')
            _dshell_opts='--kill-tasks -h --help'
            ;;
        'completion')
            _dshell_opts='-h --help'
            ;;
        'help')
            _dshell_opts='-h --help'
            ;;
        *) return 1 ;;
    esac
}

# The kind of the value of an option ($2) or of positional argument @N of PATH ($1).
_dshell_value() {
    case "$1|$2" in
        '|--color') _dshell_kind='choice auto always never' ;;
        'ps|--state') _dshell_kind='choice STAGING STARTING RUNNING KILLING FINISHED FAILED KILLED LOST ERROR' ;;
        'ps|--service') _dshell_kind='service' ;;
        'ps|-o' | 'ps|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'ps|@0') _dshell_kind='path' ;;
        'inspect|-o' | 'inspect|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'inspect|@0') _dshell_kind='ref' ;;
        'run|--tier') _dshell_kind='choice preemptible preferred' ;;
        'run|--on') _dshell_kind='path' ;;
        'run|-f' | 'run|--file') _dshell_kind='file' ;;
        'run|@'*) _dshell_kind='command' ;;
        'exec|@0') _dshell_kind='ref' ;;
        'exec|@'*) _dshell_kind='command' ;;
        'kill|-s' | 'kill|--signal') _dshell_kind='choice TERM KILL HUP INT QUIT USR1 USR2 STOP CONT' ;;
        'kill|-o' | 'kill|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'kill|@'*) _dshell_kind='ref' ;;
        'top|-o' | 'top|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'top|@0') _dshell_kind='path' ;;
        'svc abort|-o' | 'svc abort|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'svc abort|@0') _dshell_kind='service' ;;
        'svc deploy|-f' | 'svc deploy|--file') _dshell_kind='file' ;;
        'svc deploy|--tier') _dshell_kind='choice preferred preemptible' ;;
        'svc deploy|--on') _dshell_kind='path' ;;
        'svc deploy|-o' | 'svc deploy|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'svc deploy|@'*) _dshell_kind='command' ;;
        'svc deployments|-o' | 'svc deployments|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'svc deployments|@0') _dshell_kind='service' ;;
        'svc diff|-f' | 'svc diff|--file') _dshell_kind='file' ;;
        'svc diff|@0') _dshell_kind='service' ;;
        'svc endpoints|-o' | 'svc endpoints|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'svc endpoints|@0') _dshell_kind='service' ;;
        'svc logs|@0') _dshell_kind='service' ;;
        'svc ls|-o' | 'svc ls|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'svc ls|@0') _dshell_kind='path' ;;
        'svc pause|-o' | 'svc pause|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'svc pause|@0') _dshell_kind='service' ;;
        'svc restart|-o' | 'svc restart|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'svc restart|@0') _dshell_kind='service' ;;
        'svc resume|-o' | 'svc resume|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'svc resume|@0') _dshell_kind='service' ;;
        'svc rm|-o' | 'svc rm|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'svc rm|@0') _dshell_kind='service' ;;
        'svc rollback|-o' | 'svc rollback|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'svc rollback|@0') _dshell_kind='service' ;;
        'svc scale|-o' | 'svc scale|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'svc scale|@0') _dshell_kind='service' ;;
        'svc show|-o' | 'svc show|--format') _dshell_kind='choice native toml json yaml marathon' ;;
        'svc show|@0') _dshell_kind='service' ;;
        'svc start|-o' | 'svc start|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'svc start|@0') _dshell_kind='service' ;;
        'svc status|-o' | 'svc status|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'svc status|@0') _dshell_kind='service' ;;
        'svc stop|-o' | 'svc stop|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'svc stop|@0') _dshell_kind='service' ;;
        'svc versions|-o' | 'svc versions|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'svc versions|@0') _dshell_kind='service' ;;
        'svc wait|@0') _dshell_kind='service' ;;
        'job create|-f' | 'job create|--file') _dshell_kind='file' ;;
        'job create|--concurrency') _dshell_kind='choice allow forbid replace' ;;
        'job create|--on') _dshell_kind='path' ;;
        'job create|-o' | 'job create|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'job create|@'*) _dshell_kind='command' ;;
        'job graph|-o' | 'job graph|--output') _dshell_kind='choice text dot json' ;;
        'job graph|@0') _dshell_kind='path' ;;
        'job history|-o' | 'job history|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'job kill|-o' | 'job kill|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'job ls|-o' | 'job ls|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'job ls|@0') _dshell_kind='path' ;;
        'job pause|-o' | 'job pause|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'job resume|-o' | 'job resume|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'job rm|-o' | 'job rm|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'job run|-o' | 'job run|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'job show|-o' | 'job show|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'fw launch|--on') _dshell_kind='path' ;;
        'fw launch|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'fw ls|-o' | 'fw ls|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'fw ls|@0') _dshell_kind='path' ;;
        'mount|-t' | 'mount|--type') _dshell_kind='backend' ;;
        'mount|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'mount|@1') _dshell_kind='path' ;;
        'umount|@0') _dshell_kind='mount' ;;
        'ls|-o' | 'ls|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'ls|@0') _dshell_kind='path' ;;
        'cd|@0') _dshell_kind='path' ;;
        'cat|@'*) _dshell_kind='ref' ;;
        'tail|@0') _dshell_kind='ref' ;;
        'nodes attr|--on') _dshell_kind='path' ;;
        'nodes attr|-o' | 'nodes attr|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'nodes attr|@0') _dshell_kind='agent' ;;
        'nodes ls|-o' | 'nodes ls|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'nodes ls|@0') _dshell_kind='path' ;;
        'nodes up|--on') _dshell_kind='path' ;;
        'nodes up|@0') _dshell_kind='agent' ;;
        'drain|--on') _dshell_kind='path' ;;
        'drain|-o' | 'drain|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'drain|@0') _dshell_kind='agent' ;;
        'maint cancel|--on') _dshell_kind='path' ;;
        'maint cancel|-o' | 'maint cancel|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'maint cancel|@0') _dshell_kind='agent' ;;
        'maint ls|--on') _dshell_kind='path' ;;
        'maint ls|-o' | 'maint ls|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'maint schedule|--on') _dshell_kind='path' ;;
        'maint schedule|-o' | 'maint schedule|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'maint schedule|@0') _dshell_kind='agent' ;;
        'quota ls|--on') _dshell_kind='path' ;;
        'quota ls|-o' | 'quota ls|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'quota rm|--on') _dshell_kind='path' ;;
        'quota rm|-o' | 'quota rm|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'quota set|--on') _dshell_kind='path' ;;
        'quota set|-o' | 'quota set|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'reserve|--on') _dshell_kind='path' ;;
        'reserve|-o' | 'reserve|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'reserve|@0') _dshell_kind='agent' ;;
        'unreserve|--on') _dshell_kind='path' ;;
        'unreserve|-o' | 'unreserve|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'unreserve|@0') _dshell_kind='agent' ;;
        'vol ls|--on') _dshell_kind='path' ;;
        'vol ls|-o' | 'vol ls|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'vol rm|--on') _dshell_kind='path' ;;
        'vol show|--on') _dshell_kind='path' ;;
        'vol show|-o' | 'vol show|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'events|-o' | 'events|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'events|@0') _dshell_kind='path' ;;
        'wait|--for') _dshell_kind='choice STAGING STARTING RUNNING KILLING FINISHED FAILED KILLED LOST ERROR' ;;
        'wait|-o' | 'wait|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'wait|@'*) _dshell_kind='ref' ;;
        'backends|-o' | 'backends|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'engine start|-o' | 'engine start|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'engine status|-o' | 'engine status|--output') _dshell_kind='choice table wide tsv json jsonl yaml name jsonpath=' ;;
        'completion|@0') _dshell_kind='choice bash zsh fish' ;;
        'help|@'*) _dshell_kind='verb' ;;
    esac
}

# Reads the words between `dshell` and the cursor: sets _dshell_path (the verb path),
# _dshell_npos (positional arguments seen), _dshell_expect (an option waiting for its value)
# and _dshell_dashdash (options have ended). Fails on an unknown verb.
_dshell_scan() {
    _dshell_path= _dshell_npos=0 _dshell_expect= _dshell_dashdash=0
    _dshell_node ""
    local w
    for w in "$@"; do
        if [ -n "$_dshell_expect" ]; then
            [ "$w" = "=" ] && continue  # bash splits --option=value at the '='
            _dshell_expect=
            continue
        fi
        if [ "$_dshell_dashdash" = 0 ]; then
            case "$w" in
                --) _dshell_dashdash=1; continue ;;
                -?*)
                    case " $_dshell_vopts " in *" $w "*) _dshell_expect=$w ;; esac
                    continue ;;
            esac
        fi
        if [ -n "$_dshell_subs" ] && [ "$_dshell_npos" = 0 ]; then
            case " $_dshell_subs " in
                *" $w "*)
                    _dshell_path=${_dshell_path:+$_dshell_path }$w
                    _dshell_node "$_dshell_path"
                    continue ;;
                *) return 1 ;;
            esac
        fi
        _dshell_npos=$((_dshell_npos + 1))
        [ "$_dshell_inter" = 0 ] && _dshell_dashdash=1
    done
    return 0
}

# What the word at the cursor ($1) is: sets _dshell_kind to sub, option, "choice A B…", file,
# command, verb, a live kind, or nothing.
_dshell_want() {
    _dshell_kind=
    if [ -n "$_dshell_expect" ]; then
        _dshell_value "$_dshell_path" "$_dshell_expect"
        return 0
    fi
    if [ "$_dshell_dashdash" = 0 ]; then
        case "$1" in -*) _dshell_kind=option; return 0 ;; esac
    fi
    if [ -n "$_dshell_subs" ] && [ "$_dshell_npos" = 0 ]; then
        _dshell_kind=sub
        return 0
    fi
    _dshell_value "$_dshell_path" "@$_dshell_npos"
}

_dshell() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    COMPREPLY=()
    [ "$cur" = "=" ] && cur=
    _dshell_scan "${COMP_WORDS[@]:1:COMP_CWORD-1}" || return 0
    _dshell_want "$cur"
    case "$_dshell_kind" in
        sub) COMPREPLY=($(compgen -W "$_dshell_subs" -- "$cur")) ;;
        option) COMPREPLY=($(compgen -W "$_dshell_opts" -- "$cur")) ;;
        "choice "*) COMPREPLY=($(compgen -W "${_dshell_kind#choice }" -- "$cur")) ;;
        verb) _dshell_node ""; COMPREPLY=($(compgen -W "$_dshell_subs" -- "$cur")) ;;
        file|command)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur")) ;;
        path|ref|task|service|agent|mount|backend)
            local IFS=$'\n'
            COMPREPLY=($(command dshell __complete "$_dshell_kind" "$cur" 2>/dev/null))
            case "${COMPREPLY[*]}" in */|*/$'\n'*) compopt -o nospace 2>/dev/null ;; esac ;;
    esac
    return 0
}

complete -F _dshell dshell
