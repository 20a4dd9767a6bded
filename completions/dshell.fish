# fish completion for dshell. Generated from the command tree by
#   python -m dshell.completion --write completions/
# Do not edit: regenerate. Install: copy to ~/.config/fish/completions/dshell.fish, or
# `dshell completion fish | source`. Live values (task ids, services, agents, namespace
# paths) come from `dshell __complete KIND PREFIX`, which answers within about a second.

# The command at PATH: its sub-verbs (with descriptions), options, value options.
function __dshell_node
    set -g __dshell_subs
    set -g __dshell_descs
    set -g __dshell_opts
    set -g __dshell_vopts
    set -g __dshell_inter 1
    switch "$argv"
        case ''
            set -g __dshell_subs 'ps' 'inspect' 'run' 'exec' 'kill' 'top' 'svc' 'mount' 'umount' 'ls' 'cd' 'pwd' 'cat' 'tail' 'nodes' 'drain' 'events' 'wait' 'backends' 'engine' 'completion' 'help'
            set -g __dshell_descs 'ps	List tasks of every mount under PATH (default: the current path).' 'inspect	Show one task (id, unique prefix or path) with its full state history.' 'run	Launch a task: `run [OPTIONS] -- CMD [ARGS…]` (argv, no shell) or...' 'exec	Run COMMAND in a running task\'s sandbox, environment and cgroups.' 'kill	Stop tasks: SIGTERM to the task\'s session, the grace period, then...' 'top	Live view of agents and tasks with CPU %, RSS and allocated vs used.' 'svc	Long-running services: deploy, scale, restart, roll back, wait...' 'mount	Attach a cluster at TARGET; bare `mount` lists the mount table.' 'umount	Detach the cluster mounted at TARGET.' 'ls	List a namespace directory (/, a mount, its tasks, agents, svc,...' 'cd	Change the current namespace path (the REPL and runbooks keep it...' 'pwd	Print the current namespace path.' 'cat	Print files of task sandboxes (`cat /local/tasks/ID/stdout`, or...' 'tail	Print the end of a task\'s output (a sandbox path or a task id); -f...' 'nodes	List the agents (nodes) of every mount under PATH with total,...' 'drain	Drain NODE (an id, or /MOUNT/agents/ID): no new work is placed on...' 'events	Stream state changes of every mount under PATH, each with its...' 'wait	Wait until each task reaches a state; print the tasks.' 'backends	List backend plugins (entry points in group dshell.backends) with...' 'engine	Control the embedded engine (the /local cluster).' 'completion	Print a completion script: `source <(dshell completion bash)`.' 'help	List verbs, or show the help of one (`help svc deploy`).'
            set -g __dshell_opts '--version' '--debug' '--color' '-h' '--help'
            set -g __dshell_vopts '--color'
        case 'ps'
            set -g __dshell_opts '--state' '--service' '-w' '--watch' '--sort-by' '-l' '--selector' '-a' '--all' '--limit' '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '--state' '--service' '--sort-by' '-l' '--selector' '--limit' '-o' '--output'
        case 'inspect'
            set -g __dshell_opts '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '-o' '--output'
        case 'run'
            set -g __dshell_opts '--shell' '--name' '--cpus' '--mem' '--disk' '--env' '-e' '--port' '--instances' '--role' '--label' '-C' '--constraint' '--idempotency-key' '--after' '--partition' '--on' '-f' '--file' '--format' '--bind' '--job' '--dry-run' '-d' '--detach' '-i' '--interactive' '-t' '--tty' '-h' '--help'
            set -g __dshell_vopts '--shell' '--name' '--cpus' '--mem' '--disk' '--env' '-e' '--port' '--instances' '--role' '--label' '-C' '--constraint' '--idempotency-key' '--after' '--partition' '--on' '-f' '--file' '--format' '--bind' '--job'
            set -g __dshell_inter 0
        case 'exec'
            set -g __dshell_opts '-i' '--interactive' '-t' '--tty' '--env' '-e' '-h' '--help'
            set -g __dshell_vopts '--env' '-e'
            set -g __dshell_inter 0
        case 'kill'
            set -g __dshell_opts '-s' '--signal' '--grace' '--scale' '-y' '--yes' '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '-s' '--signal' '--grace' '-o' '--output'
        case 'top'
            set -g __dshell_opts '-n' '--iterations' '-d' '--delay' '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '-n' '--iterations' '-d' '--delay' '-o' '--output'
        case 'svc'
            set -g __dshell_subs 'abort' 'deploy' 'deployments' 'diff' 'endpoints' 'logs' 'ls' 'pause' 'restart' 'resume' 'rm' 'rollback' 'scale' 'show' 'start' 'status' 'stop' 'versions' 'wait'
            set -g __dshell_descs 'abort	Abort the running deployment, leaving the instances as they are.' 'deploy	Deploy (or update) services from a spec `-f FILE` or from flags...' 'deployments	The recent deployments of a service, the running one last.' 'diff	Compare a spec file with the deployed service: exit 0 same, 1...' 'endpoints	host:port of each running instance per named port (-q: one address...' 'logs	Output of every instance, merged, each line prefixed with its...' 'ls	List services of every mount under PATH.' 'pause	Pause the running deployment where it is.' 'restart	Restart every instance, rolling (a new version of the same config).' 'resume	Resume a paused deployment.' 'rm	Stop a service (or every service of a group) and forget it.' 'rollback	Go back to the previous version (or --to VERSION), rolling.' 'scale	Set the number of instances (a rolling change within the upgrade...' 'show	Print a service\'s spec (a file `svc deploy -f` takes back).' 'start	Start a stopped service at its instance count.' 'status	A service: state, version, deployment and each instance (agent,...' 'stop	Stop every instance (dependants first); `svc start` brings them back.' 'versions	The versions of a service\'s configuration (current: *).' 'wait	Wait until a service is healthy (or deployed, or stopped).'
            set -g __dshell_opts '-h' '--help'
        case 'svc abort'
            set -g __dshell_opts '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '-o' '--output'
        case 'svc deploy'
            set -g __dshell_opts '-f' '--file' '--format' '--bind' '--job' '--name' '--instances' '--cpus' '--mem' '--port' '--env' '-e' '--shell' '--on' '--dry-run' '--force' '--rollback-on-failure' '-o' '--output' '-q' '--quiet' '--raw' '--wait' '--no-wait' '--timeout' '-h' '--help'
            set -g __dshell_vopts '-f' '--file' '--format' '--bind' '--job' '--name' '--instances' '--cpus' '--mem' '--port' '--env' '-e' '--on' '-o' '--output' '--timeout'
            set -g __dshell_inter 0
        case 'svc deployments'
            set -g __dshell_opts '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '-o' '--output'
        case 'svc diff'
            set -g __dshell_opts '-f' '--file' '--format' '--bind' '--job' '-h' '--help'
            set -g __dshell_vopts '-f' '--file' '--format' '--bind' '--job'
        case 'svc endpoints'
            set -g __dshell_opts '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '-o' '--output'
        case 'svc logs'
            set -g __dshell_opts '-f' '--follow' '--stderr' '-h' '--help'
        case 'svc ls'
            set -g __dshell_opts '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '-o' '--output'
        case 'svc pause'
            set -g __dshell_opts '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '-o' '--output'
        case 'svc restart'
            set -g __dshell_opts '--wait' '--no-wait' '--timeout' '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '--timeout' '-o' '--output'
        case 'svc resume'
            set -g __dshell_opts '--wait' '--no-wait' '--timeout' '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '--timeout' '-o' '--output'
        case 'svc rm'
            set -g __dshell_opts '--wait' '--no-wait' '--timeout' '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '--timeout' '-o' '--output'
        case 'svc rollback'
            set -g __dshell_opts '--wait' '--no-wait' '--timeout' '-o' '--output' '-q' '--quiet' '--raw' '--to' '-h' '--help'
            set -g __dshell_vopts '--timeout' '-o' '--output' '--to'
        case 'svc scale'
            set -g __dshell_opts '--wait' '--no-wait' '--timeout' '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '--timeout' '-o' '--output'
        case 'svc show'
            set -g __dshell_opts '-o' '--output' '--format' '--version' '-h' '--help'
            set -g __dshell_vopts '-o' '--output' '--format' '--version'
        case 'svc start'
            set -g __dshell_opts '--wait' '--no-wait' '--timeout' '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '--timeout' '-o' '--output'
        case 'svc status'
            set -g __dshell_opts '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '-o' '--output'
        case 'svc stop'
            set -g __dshell_opts '--wait' '--no-wait' '--timeout' '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '--timeout' '-o' '--output'
        case 'svc versions'
            set -g __dshell_opts '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '-o' '--output'
        case 'svc wait'
            set -g __dshell_opts '--healthy' '--deployed' '--stopped' '--timeout' '-h' '--help'
            set -g __dshell_vopts '--timeout'
        case 'mount'
            set -g __dshell_opts '-t' '--type' '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '-t' '--type' '-o' '--output'
        case 'umount'
            set -g __dshell_opts '-h' '--help'
        case 'ls'
            set -g __dshell_opts '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '-o' '--output'
        case 'cd'
            set -g __dshell_opts '-h' '--help'
        case 'pwd'
            set -g __dshell_opts '-h' '--help'
        case 'cat'
            set -g __dshell_opts '--stderr' '-h' '--help'
        case 'tail'
            set -g __dshell_opts '-f' '--follow' '-n' '--lines' '--stderr' '-h' '--help'
            set -g __dshell_vopts '-n' '--lines'
        case 'nodes'
            set -g __dshell_subs 'ls' 'up'
            set -g __dshell_descs 'ls	List the agents of every mount under PATH (the default sub-verb).' 'up	Return a drained NODE to service.'
            set -g __dshell_opts '-h' '--help'
        case 'nodes ls'
            set -g __dshell_opts '--sort-by' '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '--sort-by' '-o' '--output'
        case 'nodes up'
            set -g __dshell_opts '--on' '-h' '--help'
            set -g __dshell_vopts '--on'
        case 'drain'
            set -g __dshell_opts '--reason' '--on' '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '--reason' '--on' '-o' '--output'
        case 'events'
            set -g __dshell_opts '--since' '--no-follow' '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '--since' '-o' '--output'
        case 'wait'
            set -g __dshell_opts '--for' '--timeout' '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '--for' '--timeout' '-o' '--output'
        case 'backends'
            set -g __dshell_opts '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '-o' '--output'
        case 'engine'
            set -g __dshell_subs 'start' 'status' 'stop'
            set -g __dshell_descs 'start	Start the engine daemon if it is not running; re-adopts tasks left...' 'status	pid, version, socket, state dir, agents and the isolation in force.' 'stop	Stop the engine daemon.'
            set -g __dshell_opts '-h' '--help'
        case 'engine start'
            set -g __dshell_opts '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '-o' '--output'
        case 'engine status'
            set -g __dshell_opts '-o' '--output' '-q' '--quiet' '--raw' '-h' '--help'
            set -g __dshell_vopts '-o' '--output'
        case 'engine stop'
            set -g __dshell_opts '--kill-tasks' '-h' '--help'
        case 'completion'
            set -g __dshell_opts '-h' '--help'
        case 'help'
            set -g __dshell_opts '-h' '--help'
        case '*'
            return 1
    end
end

# The kind of the value of an option or of positional argument @N of PATH.
function __dshell_value
    switch "$argv[1]|$argv[2]"
        case '|--color'
            set -g __dshell_kind 'choice' 'auto' 'always' 'never'
        case 'ps|--state'
            set -g __dshell_kind 'choice' 'STAGING' 'STARTING' 'RUNNING' 'KILLING' 'FINISHED' 'FAILED' 'KILLED' 'LOST' 'ERROR'
        case 'ps|--service'
            set -g __dshell_kind 'service'
        case 'ps|-o' 'ps|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'ps|@0'
            set -g __dshell_kind 'path'
        case 'inspect|-o' 'inspect|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'inspect|@0'
            set -g __dshell_kind 'ref'
        case 'run|--on'
            set -g __dshell_kind 'path'
        case 'run|-f' 'run|--file'
            set -g __dshell_kind 'file'
        case 'run|@*'
            set -g __dshell_kind 'command'
        case 'exec|@0'
            set -g __dshell_kind 'ref'
        case 'exec|@*'
            set -g __dshell_kind 'command'
        case 'kill|-s' 'kill|--signal'
            set -g __dshell_kind 'choice' 'TERM' 'KILL' 'HUP' 'INT' 'QUIT' 'USR1' 'USR2' 'STOP' 'CONT'
        case 'kill|-o' 'kill|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'kill|@*'
            set -g __dshell_kind 'ref'
        case 'top|-o' 'top|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'top|@0'
            set -g __dshell_kind 'path'
        case 'svc abort|-o' 'svc abort|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'svc abort|@0'
            set -g __dshell_kind 'service'
        case 'svc deploy|-f' 'svc deploy|--file'
            set -g __dshell_kind 'file'
        case 'svc deploy|--on'
            set -g __dshell_kind 'path'
        case 'svc deploy|-o' 'svc deploy|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'svc deploy|@*'
            set -g __dshell_kind 'command'
        case 'svc deployments|-o' 'svc deployments|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'svc deployments|@0'
            set -g __dshell_kind 'service'
        case 'svc diff|-f' 'svc diff|--file'
            set -g __dshell_kind 'file'
        case 'svc diff|@0'
            set -g __dshell_kind 'service'
        case 'svc endpoints|-o' 'svc endpoints|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'svc endpoints|@0'
            set -g __dshell_kind 'service'
        case 'svc logs|@0'
            set -g __dshell_kind 'service'
        case 'svc ls|-o' 'svc ls|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'svc ls|@0'
            set -g __dshell_kind 'path'
        case 'svc pause|-o' 'svc pause|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'svc pause|@0'
            set -g __dshell_kind 'service'
        case 'svc restart|-o' 'svc restart|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'svc restart|@0'
            set -g __dshell_kind 'service'
        case 'svc resume|-o' 'svc resume|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'svc resume|@0'
            set -g __dshell_kind 'service'
        case 'svc rm|-o' 'svc rm|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'svc rm|@0'
            set -g __dshell_kind 'service'
        case 'svc rollback|-o' 'svc rollback|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'svc rollback|@0'
            set -g __dshell_kind 'service'
        case 'svc scale|-o' 'svc scale|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'svc scale|@0'
            set -g __dshell_kind 'service'
        case 'svc show|-o' 'svc show|--output' 'svc show|--format'
            set -g __dshell_kind 'choice' 'native' 'toml' 'json' 'yaml' 'marathon'
        case 'svc show|@0'
            set -g __dshell_kind 'service'
        case 'svc start|-o' 'svc start|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'svc start|@0'
            set -g __dshell_kind 'service'
        case 'svc status|-o' 'svc status|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'svc status|@0'
            set -g __dshell_kind 'service'
        case 'svc stop|-o' 'svc stop|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'svc stop|@0'
            set -g __dshell_kind 'service'
        case 'svc versions|-o' 'svc versions|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'svc versions|@0'
            set -g __dshell_kind 'service'
        case 'svc wait|@0'
            set -g __dshell_kind 'service'
        case 'mount|-t' 'mount|--type'
            set -g __dshell_kind 'backend'
        case 'mount|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'mount|@1'
            set -g __dshell_kind 'path'
        case 'umount|@0'
            set -g __dshell_kind 'mount'
        case 'ls|-o' 'ls|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'ls|@0'
            set -g __dshell_kind 'path'
        case 'cd|@0'
            set -g __dshell_kind 'path'
        case 'cat|@*'
            set -g __dshell_kind 'ref'
        case 'tail|@0'
            set -g __dshell_kind 'ref'
        case 'nodes ls|-o' 'nodes ls|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'nodes ls|@0'
            set -g __dshell_kind 'path'
        case 'nodes up|--on'
            set -g __dshell_kind 'path'
        case 'nodes up|@0'
            set -g __dshell_kind 'agent'
        case 'drain|--on'
            set -g __dshell_kind 'path'
        case 'drain|-o' 'drain|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'drain|@0'
            set -g __dshell_kind 'agent'
        case 'events|-o' 'events|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'events|@0'
            set -g __dshell_kind 'path'
        case 'wait|--for'
            set -g __dshell_kind 'choice' 'STAGING' 'STARTING' 'RUNNING' 'KILLING' 'FINISHED' 'FAILED' 'KILLED' 'LOST' 'ERROR'
        case 'wait|-o' 'wait|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'wait|@*'
            set -g __dshell_kind 'ref'
        case 'backends|-o' 'backends|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'engine start|-o' 'engine start|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'engine status|-o' 'engine status|--output'
            set -g __dshell_kind 'choice' 'table' 'wide' 'tsv' 'json' 'jsonl' 'yaml' 'name' 'jsonpath='
        case 'completion|@0'
            set -g __dshell_kind 'choice' 'bash' 'zsh' 'fish'
        case 'help|@*'
            set -g __dshell_kind 'verb'
    end
end

function __dshell_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    set -e words[1]
    __dshell_node ''
    set -l path ''
    set -l npos 0
    set -l expect ''
    set -l dashdash 0
    for w in $words
        if test -n "$expect"
            set expect ''
            continue
        end
        if test $dashdash = 0
            if test "$w" = '--'
                set dashdash 1
                continue
            end
            if string match -q -- '-?*' $w
                contains -- $w $__dshell_vopts; and set expect $w
                continue
            end
        end
        if test -n "$__dshell_subs"; and test $npos = 0
            contains -- $w $__dshell_subs; or return
            set path (string trim -- "$path $w")
            __dshell_node $path
            continue
        end
        set npos (math $npos + 1)
        test $__dshell_inter = 0; and set dashdash 1
    end
    set -l inline ''
    set -g __dshell_kind
    if test -n "$expect"
        __dshell_value $path $expect
    else if test $dashdash = 0; and string match -q -- '--*=*' $cur
        set -l opt (string split -m 1 -- '=' $cur)[1]
        set inline "$opt="
        set cur (string split -m 1 -- '=' $cur)[2]
        __dshell_value $path $opt
    else if test $dashdash = 0; and string match -q -- '-*' $cur
        printf '%s\n' $__dshell_opts
        return
    else if test -n "$__dshell_subs"; and test $npos = 0
        printf '%s\n' $__dshell_descs
        return
    else
        __dshell_value $path "@$npos"
    end
    switch "$__dshell_kind[1]"
        case choice
            printf "$inline%s\n" $__dshell_kind[2..-1]
        case verb
            __dshell_node ''
            printf '%s\n' $__dshell_descs
        case file command
            __fish_complete_path $cur
        case path ref task service agent mount backend
            for c in (command dshell __complete $__dshell_kind[1] "$cur" 2>/dev/null)
                printf '%s%s\n' $inline $c
            end
    end
end

complete -c dshell -f -a '(__dshell_complete)'
