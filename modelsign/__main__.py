from modelsign._cli import main

main()
