from modelsign.cli import main

main()
