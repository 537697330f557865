from shotlab.cli import main

main()
