package progress_test

import (
	"fmt"

	"github.com/runboxhq/runbox/internal/progress"
)

func Example() {
	p, err := progress.New("pg_basebackup")
	if err != nil {
		panic(err)
	}
	for _, line := range []string{
		"pg_basebackup: checkpoint completed",
		"  714149/1808798 kB (39%), 0/1 tablespace (pgdata/base/1/2)",
		"1808798/1808798 kB (100%), 1/1 tablespace",
	} {
		if v, ok := p.Parse(line); ok {
			fmt.Printf("%.0f%%: %.0f of %.0f %s\n", v.Percent, v.Done, v.Total, v.Unit)
		} else {
			fmt.Printf("not progress: %s\n", line)
		}
	}
	// Output:
	// not progress: pg_basebackup: checkpoint completed
	// 39%: 714149 of 1808798 kB
	// 100%: 1808798 of 1808798 kB
}

func ExampleNew_regexp() {
	p, err := progress.New(`(?P<done>[\d,]+) of (?P<total>[\d,]+) (?P<unit>files)`)
	if err != nil {
		panic(err)
	}
	v, ok := p.Parse("copied 1,250 of 5,000 files")
	fmt.Println(p.Name(), ok, v.Percent, v.Done, v.Total, v.Unit)

	_, err = progress.New(`(\d+)%`)
	fmt.Println(err != nil)
	// Output:
	// custom true 25 1250 5000 files
	// true
}
