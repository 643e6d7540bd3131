from beadsmail.cli import main

main()
