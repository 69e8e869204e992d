from bonesim.cli import main

main()
