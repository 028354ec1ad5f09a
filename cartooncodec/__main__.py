from cartooncodec.cli import main

raise SystemExit(main())
