// Command pulumi-language-python is the Python language host that bluegreen's bootstrap installs
// next to the Pulumi CLI it builds.
//
// Why it exists: the Go module proxy serves the Pulumi CLI (pkg/v3) and the SDK (sdk/v3), but not
// the separately versioned module of Pulumi's own Python language host, so it cannot be built here.
// The language host is a thin process: the engine starts it, it runs the Python program through
// `pulumi-language-python-exec` (a file the sdk/v3 module does ship) and runs Python plugins such
// as policy packs. This host implements exactly the calls `pulumi preview`, `pulumi up`,
// `pulumi destroy` and `--policy-pack` make, and reports everything else as unimplemented, which
// the engine treats as "not supported" rather than as an error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// version is stamped by scripts/bootstrap with -ldflags so the engine sees the CLI's version.
var version = "3.0.0"

// exitAfterUserMessage is the exit code pulumi-language-python-exec uses after it has already
// printed an actionable error; the engine must then bail without adding its own message.
const exitAfterUserMessage = 32

// engineCheckInterval is how often the host asks whether the engine still answers. Pulumi's own
// providers ask every 5 minutes; a host left behind by a killed CLI holds the program's output
// pipes and its Python processes, so this one asks every second (a local gRPC call).
const engineCheckInterval = time.Second

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	execScript    string
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pulumi-language-python [flags] ENGINE_ADDRESS")
		os.Exit(2)
	}
	// The engine passes flags first and its own gRPC address last.
	engine := os.Args[len(os.Args)-1]
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	h := &host{
		engineAddress: engine,
		execScript:    filepath.Join(filepath.Dir(self), "pulumi-language-python-exec"),
	}
	// Exit when the engine that started this host goes away (a killed `pulumi`), as Pulumi's own
	// plugins do. Not a graceful stop: the program and policy packs it runs are in calls that
	// would never finish without the engine. Every process it started dies with it (Pdeathsig).
	ctx, cancel := context.WithCancel(context.Background())
	if err := rpcutil.Healthcheck(ctx, engine, engineCheckInterval, cancel); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		<-ctx.Done()
		fmt.Fprintln(os.Stderr, "pulumi-language-python: the engine went away; exiting")
		os.Exit(1)
	}()
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(s *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(s, h)
			return nil
		},
		Options: []grpc.ServerOption{grpc.MaxRecvMsgSize(400 * 1024 * 1024)},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// python returns the interpreter for a program: the project's `virtualenv` runtime option when set
// (relative to the project root), else $PULUMI_PYTHON_CMD, else python3.
func python(info *pulumirpc.ProgramInfo) (string, []string, error) {
	env := os.Environ()
	if info != nil && info.Options != nil {
		if v, ok := info.Options.AsMap()["virtualenv"].(string); ok && v != "" {
			if !filepath.IsAbs(v) {
				v = filepath.Join(info.RootDirectory, v)
			}
			bin := filepath.Join(v, "bin", "python")
			if _, err := os.Stat(bin); err != nil {
				return "", nil, fmt.Errorf(
					"the virtualenv %q named in the runtime options has no bin/python: run scripts/bootstrap", v)
			}
			env = append(env, "VIRTUAL_ENV="+v, "PATH="+filepath.Join(v, "bin")+":"+os.Getenv("PATH"))
			return bin, env, nil
		}
	}
	if cmd := os.Getenv("PULUMI_PYTHON_CMD"); cmd != "" {
		return cmd, env, nil
	}
	return "python3", env, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// GetRequiredPackages reports none: every plugin this project uses is installed by bootstrap, and
// the engine must never try to download one (nothing can be downloaded here).
func (h *host) GetRequiredPackages(
	context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *host) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	bin, env, err := python(req.GetInfo())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	args := []string{"-u", h.execScript}
	flag := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flag("monitor", req.GetMonitorAddress())
	flag("engine", h.engineAddress)
	flag("project", req.GetProject())
	flag("root_directory", req.GetInfo().GetRootDirectory())
	flag("stack", req.GetStack())
	flag("pwd", req.GetPwd())
	flag("dry_run", strconv.FormatBool(req.GetDryRun()))
	flag("parallel", strconv.Itoa(int(req.GetParallel())))
	flag("organization", req.GetOrganization())
	entry := req.GetInfo().GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	args = append(args, entry)
	args = append(args, req.GetArgs()...)

	configMap := req.GetConfig()
	if configMap == nil {
		configMap = map[string]string{}
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, fmt.Errorf("serialising config: %w", err)
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secrets, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("serialising secret keys: %w", err)
	}

	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = req.GetPwd()
	cmd.Env = append(env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secrets))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// The program shares this host's stdout and stderr, and the engine waits for those to close
	// after it kills the host (for instance when a policy fails the preview); without this the
	// orphaned program would keep them open and stall every such run by the engine's 5 s timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == exitAfterUserMessage {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{Error: "could not run the Python program: " + err.Error()}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// RunPlugin runs a Python plugin directory (a policy pack) as `python DIR ARGS...`, streaming its
// output back to the engine, which reads the plugin's gRPC port from it.
func (h *host) RunPlugin(
	req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	bin, env, err := python(req.GetInfo())
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()

	args := append([]string{"-u", req.GetInfo().GetProgramDirectory()}, req.GetArgs()...)
	cmd := exec.CommandContext(server.Context(), bin, args...)
	cmd.Dir = req.GetPwd()
	cmd.Env = append(env, req.GetEnv()...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// A policy pack serves until it is killed; it must not outlive this host (see Run).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if status, ok := exitErr.Sys().(syscall.WaitStatus); ok {
				return server.Send(&pulumirpc.RunPluginResponse{
					Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(status.ExitStatus())},
				})
			}
		}
		return fmt.Errorf("running the Python plugin in %s: %w", req.GetInfo().GetProgramDirectory(), err)
	}
	return closer.Close()
}
