from cycleml.cli.app import main

main()
