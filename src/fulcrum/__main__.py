from fulcrum.cli.main import main

main()
