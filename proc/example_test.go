package proc_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/runboxhq/runbox/proc"
)

func ExampleRun() {
	res, err := proc.Run(context.Background(), "/bin/echo", "hello")
	if err != nil {
		panic(err) // could not start it
	}
	fmt.Printf("%s %d %q\n", res.Status, res.ExitCode, res.Stdout)
	// Output: ok 0 "hello\n"
}

func ExampleCmd_Check() {
	c := proc.Command("/bin/sh", "-c", "echo 'disk full' >&2; exit 2")
	c.Check = true
	_, err := c.Run(context.Background())
	fmt.Println(errors.Is(err, proc.ErrExitStatus))
	fmt.Println(err)
	// Output:
	// true
	// proc: /bin/sh: exit status 2: disk full
}

func ExampleCmd_Timeout() {
	c := proc.Command("/bin/sh", "-c", "sleep 60 & sleep 60")
	c.Timeout = 50 * time.Millisecond
	res, _ := c.Run(context.Background())
	fmt.Println(res.Status, proc.SignalName(res.Signal))
	// Output: timeout SIGTERM
}

func ExampleLines() {
	c := proc.Command("/bin/sh", "-c", `printf '10%%\r50%%\r100%%\ndone\n'`)
	c.Stdout = []proc.Sink{proc.Lines(func(l proc.Line) {
		fmt.Println(l.Kind == proc.LineUpdate, l.Text)
	})}
	c.Run(context.Background())
	// Output:
	// true 10%
	// true 50%
	// false 100%
	// false done
}
